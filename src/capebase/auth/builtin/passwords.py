"""Password hashing (pwdlib, argon2 by default) off the event loop, with a bounded concurrency."""

from __future__ import annotations

import asyncio
import secrets
import weakref

import anyio.to_thread
from pwdlib import PasswordHash
from pwdlib.exceptions import PwdlibError

MAX_CONCURRENT_HASHES = 4
"""Argon2 uses 64 MiB per hash by default: more parallel hashes would only buy memory pressure."""


class Passwords:
    """Hashes and verifies passwords in worker threads.

    Args:
        hasher: the pwdlib ``PasswordHash`` to use; its first hasher makes new hashes, the others
            still verify old ones (and a sign-in rehashes with the first).
    """

    def __init__(self, hasher: PasswordHash) -> None:
        self.hasher = hasher
        self._semaphores: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Semaphore
        ] = weakref.WeakKeyDictionary()
        self._dummy: str | None = None

    @property
    def _slots(self) -> asyncio.Semaphore:
        """The running loop's semaphore: an asyncio semaphore serves one event loop only."""
        loop = asyncio.get_running_loop()
        slots = self._semaphores.get(loop)
        if slots is None:
            slots = self._semaphores[loop] = asyncio.Semaphore(MAX_CONCURRENT_HASHES)
        return slots

    async def prepare(self) -> None:
        """Make the dummy hash now, so that the first unknown login is not slower than others."""
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        """A new hash of ``password``."""
        async with self._slots:
            return await anyio.to_thread.run_sync(self.hasher.hash, password)

    async def verify(self, password: str, hashed: str | None) -> tuple[bool, str | None]:
        """Whether ``password`` matches ``hashed``, and a new hash if it should be upgraded.

        With ``hashed=None`` (no such user) a dummy hash is verified all the same, so that an
        unknown account takes as long to reject as a wrong password.
        """
        if hashed is None:
            await self.prepare()
            assert self._dummy is not None  # set by prepare()
            await self._verify(password, self._dummy)
            return False, None
        return await self._verify(password, hashed)

    async def _verify(self, password: str, hashed: str) -> tuple[bool, str | None]:
        async with self._slots:
            try:
                return await anyio.to_thread.run_sync(
                    self.hasher.verify_and_update, password, hashed
                )
            except PwdlibError:
                return False, None
