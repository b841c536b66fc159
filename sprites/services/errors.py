"""The errors services raise besides the client's `SpritesError` family, and the checks that
turn a Sprites answer into one of them."""

from sprites.client import ExecResult, SpritesError, StreamEvent


class SpriteActionError(Exception):
    """An action that cannot run on this sprite as it is. `code` is stable (the API sends it)."""

    code = "invalid_state"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        if code:
            self.code = code


class CommandFailed(SpriteActionError):
    """An OpenClaw CLI command in the sprite failed or answered something unreadable."""

    code = "command_failed"


class PairingRequestNotFound(SpriteActionError):
    code = "pairing_request_not_found"


class GatewayFailed(SpritesError):
    """The gateway service failed to start (exit 78 = invalid OpenClaw config). Permanent."""


def check_stream(events: list[StreamEvent], what: str) -> None:
    """Service streams report a failed start as events, not as an HTTP error. An exit is
    reported with the process's own reason from its stderr (for OpenClaw: `Gateway failed to
    start: Invalid config … Unrecognized key …`), so staff see why, not just a code."""
    said: list[str] = []
    for event in events:
        if event.type == "stderr" and event.data:
            said += [line.strip() for line in str(event.data).splitlines() if line.strip()]
        if event.type == "error" or (event.type == "exit" and event.exit_code):
            detail = event.error or event.data or f"exit code {event.exit_code}"
            if said:
                detail = f"{detail}: {' / '.join(_reason(said))}"
            raise GatewayFailed(f"{what} failed: {detail}"[:500], code="gateway_failed")


def _reason(lines: list[str]) -> list[str]:
    """The first line that says what failed and the two after it, else the last three."""
    for i, line in enumerate(lines):
        if any(word in line.lower() for word in ("fail", "error", "invalid")):
            return lines[i:i + 3]
    return lines[-3:]


def check_exec(result: ExecResult, what: str) -> None:
    if not result.ok:
        # Output is untrusted: only a short tail, and the console escapes it.
        raise CommandFailed(f"{what} exited with code {result.exit_code}: {result.tail(300)}")
