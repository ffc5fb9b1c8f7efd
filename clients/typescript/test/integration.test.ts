// Everything against one real capebase app (tests/clients/ts_app.py on SQLite): the suites run
// side by side, then the README example and the restart suite run alone.

import { describe } from "node:test";
import { crudSuite } from "./crud.js";
import { exactnessSuite } from "./exactness.js";
import "./fixture.js";
import { liveSuite } from "./live.js";
import { readmeSuite } from "./readme.js";
import { restartSuite } from "./restart.js";
import { streamsSuite } from "./streams.js";

describe("against a running app", { concurrency: true }, () => {
  describe("crud", crudSuite);
  describe("streams", streamsSuite);
  describe("live", liveSuite);
  describe("exactness", exactnessSuite);
});

// Alone: its output names the changes it sees, and only its own should be there.
describe("readme", readmeSuite);
describe("restart", restartSuite);
