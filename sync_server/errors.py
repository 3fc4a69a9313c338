"""Expected server failures: each a `ProblemError` with an HTTP status, a stable code and a title.

`api/problems.py` renders them as RFC 9457 ``application/problem+json``. A 500 means a bug.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ProblemError(Exception):
    """Base of every expected API failure."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """An OpenAPI ``responses`` entry for this problem."""
        return {
            cls.status: {
                "description": cls.title,
                "content": {
                    "application/problem+json": {
                        "schema": {"$ref": "#/components/schemas/Problem"},
                        "example": {
                            "type": f"https://integmed.in/problems/{cls.code}",
                            "title": cls.title,
                            "status": cls.status,
                            "code": cls.code,
                            "detail": cls.title,
                        },
                    }
                },
            }
        }


def responses(*classes: type[ProblemError]) -> dict[int | str, dict[str, Any]]:
    """Merge the OpenAPI ``responses`` entries of several problem classes."""
    out: dict[int | str, dict[str, Any]] = {}
    for cls in classes:
        out.update(cls.schema())
    return out


class Unauthenticated(ProblemError):
    status = 401
    code = "auth.unauthenticated"
    title = "Sign-in required"


class Forbidden(ProblemError):
    status = 403
    code = "auth.forbidden"
    title = "Not allowed"


class NotFound(ProblemError):
    status = 404
    code = "not_found"
    title = "Not found"


class ConflictProblem(ProblemError):
    status = 409
    code = "conflict"
    title = "Conflict with stored data"


class TooManyRequests(ProblemError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"


class UpstreamUnavailable(ProblemError):
    status = 503
    code = "upstream.unavailable"
    title = "A national service is not answering"


class MobileNotRegistered(ProblemError):
    status = 404
    code = "auth.mobile_not_registered"
    title = "This mobile number is not registered with the Healthcare Professionals Registry (HPR)"


class TxnUnknown(ProblemError):
    status = 404
    code = "auth.txn_unknown"
    title = "Sign-in request not found: start again"


class TxnClosed(ProblemError):
    status = 410
    code = "auth.txn_closed"
    title = "This sign-in request is no longer valid: request a new OTP"


class OtpExpired(ProblemError):
    status = 410
    code = "auth.otp_expired"
    title = "The OTP has expired: request a new one"


class OtpInvalid(ProblemError):
    status = 401
    code = "auth.otp_invalid"
    title = "The OTP is wrong"


class NotEnrolled(ProblemError):
    status = 403
    code = "auth.not_enrolled"
    title = "This professional is not a member of any IntegMed clinic: ask the clinic admin to add you"


class ClinicChoiceRequired(ProblemError):
    status = 409
    code = "auth.clinic_choice_required"
    title = "This professional works at several clinics: say which one (clinic_id)"


class RefreshInvalid(ProblemError):
    status = 401
    code = "auth.refresh_invalid"
    title = "The session has ended: sign in again"


class DuplicatePatient(ProblemError):
    status = 409
    code = "patient.duplicate"
    title = "A patient with this identifier already exists in this clinic"


class ClientOutdated(ProblemError):
    status = 426
    code = "sync.client_outdated"
    title = "This IntegMed app is older than the server: update the app. Changes waiting on this PC are kept."


class ServerOutdated(ProblemError):
    status = 409
    code = "sync.server_outdated"
    title = "This IntegMed app is newer than the server: ask IT to update the server. Changes are kept."


class DeviceInvalid(ProblemError):
    status = 401
    code = "auth.device_invalid"
    title = "This PC is not enrolled any more (token unknown or revoked): sign in again to enrol it"


class BatchDeviceMismatch(ProblemError):
    status = 403
    code = "sync.device_mismatch"
    title = "The batch names another device than the one signed in"


class EncounterCompleted(ProblemError):
    status = 409
    code = "encounter.completed_immutable"
    title = "The encounter is completed and cannot change: add an addendum instead"


class PrescribingRefused(ProblemError):
    status = 403
    code = "rx.not_permitted"
    title = "The prescribing policy does not allow this prescriber to prescribe this medicine"


class InteractionContraindicated(ProblemError):
    status = 409
    code = "rx.contraindicated"
    title = "The prescription contains a contraindicated combination and cannot be saved"


class OverrideRequired(ProblemError):
    status = 409
    code = "rx.override_required"
    title = "Major interaction alerts must be overridden with a typed reason before saving"
