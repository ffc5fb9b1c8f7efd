"""Side-by-side benchmarks of capebase against hand-written FastAPI, FastCRUD, PocketBase and a
raw Starlette ceiling, plus realtime fan-out. Run with ``make bench`` (``python -m bench``)."""
