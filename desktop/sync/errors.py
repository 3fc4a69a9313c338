"""What the server or the network can answer during sign-in and sync, as `KnownError`s with user text."""

from __future__ import annotations

from desktop.errors import KnownError


class ServerRefused(KnownError):
    """The server answered with a problem the user can act on (its ``detail`` is shown)."""

    title = "The server refused this"
    default_message = "The IntegMed server refused the request."
    action = "Check what you typed and try again."
    code = "desktop.server_refused"

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int = 400,
        problem_code: str | None = None,
        detail: str | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message, detail=detail)
        self.status = status
        self.problem_code = problem_code
        self.extra = extra or {}


class AppOutdated(KnownError):
    """The server speaks a newer protocol: this app must be updated. Nothing queued is lost."""

    title = "Please update IntegMed"
    default_message = "This IntegMed app is older than the clinic's server, so it cannot sync."
    action = "Install the latest IntegMed on this PC. Everything you entered is kept and will sync after updating."
    code = "desktop.app_outdated"


class ServerOutdated(KnownError):
    """This app is newer than the server."""

    title = "The server needs an update"
    default_message = "This IntegMed app is newer than the clinic's server, so it cannot sync yet."
    action = "Ask your IT person to update the IntegMed server. Everything you entered is kept."
    code = "desktop.server_outdated"


class DeviceSignInRequired(KnownError):
    """The PC's enrolment was revoked or its token is unknown: a doctor must sign in again to enrol it."""

    title = "Sign in again"
    default_message = "This PC is no longer allowed to sync with the clinic's server."
    action = "A doctor or the clinic admin should sign in with HPR OTP to enrol this PC again. Nothing is lost."
    code = "desktop.device_sign_in_required"


class ServerError(KnownError):
    """The server failed (5xx) even after retries."""

    title = "The server has a problem"
    default_message = "The IntegMed server had an internal problem."
    action = "Work continues on this PC; sync will retry later. Tell your IT person if it lasts."
    code = "desktop.server_error"


class ServiceUnavailable(ServerError):
    """The server answered 503 with its own problem (e.g. signing not configured): not a crash, a missing part."""

    title = "A server service is not available"
    default_message = "The IntegMed server cannot do this right now."
    action = "Work continues on this PC; sync will retry later. Tell your IT person if it lasts."
    code = "desktop.service_unavailable"
