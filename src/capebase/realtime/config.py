"""Settings of change capture, delivery and retention."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from ..errors import ConfigurationError


@dataclass(frozen=True, kw_only=True, slots=True)
class RealtimeConfig:
    """How changes are captured, kept and delivered.

    Args:
        capture: write every committed row change to the change log (turn off only to measure
            what capture costs; streams and handlers then see nothing).
        queue_size: events buffered per subscriber; a subscriber that falls this far behind is
            disconnected and can resume with its last event id.
        heartbeat: seconds between keep-alive messages on idle streams.
        retention: how long the change log keeps changes for resume; older ids get ``reset``.
        poll_interval: seconds between change-log reads when nothing woke the dispatcher
            (catches changes committed by other processes).
        handler_lease: seconds a claimed handler run may take before another run may retry it.
        handler_timeout: seconds one handler call may take before it is cancelled and logged.
        replay_batch: change-log rows read per query when replaying or dispatching.
        max_subscriptions: open streams per process; more get 429 / close code 1013.
        max_subscriptions_per_client: open streams per client, more get 429 / close code
            1013. A client is the caller's user id, or for anonymous callers their network
            address (behind a proxy, run uvicorn with ``--proxy-headers`` so that it is the
            client's, not the proxy's).
        late_commit_window: seconds a skipped change id is watched for a late commit (ids are
            handed out before commit); streams may miss a transaction slower than this between
            its first write and its commit (handlers never do).
        broker_channel: the broker channel (Redis) or NOTIFY channel (PostgreSQL) to use.
        revalidate_interval: seconds between re-checks of the open streams' sign-ins (built-in
            auth): a stream whose sign-in ended, or whose user was disabled or changed role, on
            any process ends within this time even if no broker message reached this process.
        shutdown_grace: seconds shutdown waits for handlers of already-committed changes.
        resume_token_ttl: seconds a resume token (an event's ``id:``) stays valid; a client
            that comes back later gets ``reset`` and reloads.
        resume_token_secret: the key resume tokens are signed with. ``None`` (the default):
            a random key generated once and stored in ``capebase_meta``, shared by every
            process of the app. Set it to sign with a secret of your own (several apps on one
            database that must accept each other's tokens).
    """

    capture: bool = True
    queue_size: int = 1000
    heartbeat: float = 15.0
    retention: timedelta = timedelta(days=7)
    poll_interval: float = 1.0
    handler_lease: float = 30.0
    handler_timeout: float = 30.0
    replay_batch: int = 500
    max_subscriptions: int = 100_000
    max_subscriptions_per_client: int = 100
    late_commit_window: float = 30.0
    broker_channel: str = "capebase_changes"
    revalidate_interval: float = 5.0
    shutdown_grace: float = 5.0
    resume_token_ttl: float = 3600.0
    resume_token_secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in (
            "queue_size",
            "replay_batch",
            "max_subscriptions",
            "max_subscriptions_per_client",
        ):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"RealtimeConfig.{name} must be at least 1")
        for name in (
            "heartbeat",
            "poll_interval",
            "handler_lease",
            "handler_timeout",
            "late_commit_window",
            "revalidate_interval",
            "shutdown_grace",
            "resume_token_ttl",
        ):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"RealtimeConfig.{name} must be positive (seconds)")
        if not self.broker_channel.replace("_", "").isalnum():
            raise ConfigurationError("RealtimeConfig.broker_channel must be letters, digits and _")
        if self.resume_token_secret is not None and len(self.resume_token_secret) < 16:
            raise ConfigurationError(
                "RealtimeConfig.resume_token_secret must have at least 16 characters "
                "(or leave it None for a generated key)"
            )
        if self.retention <= timedelta(0):
            raise ConfigurationError("RealtimeConfig.retention must be a positive timedelta")
