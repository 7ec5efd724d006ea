"""Domain errors, raised by plain functions and turned into the API's error
envelope or a form's field errors by the layer that called them."""


class HeraldError(Exception):
    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        field: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code

    def as_dict(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.field:
            error["field"] = self.field
        return {"error": error}


class InvalidInput(HeraldError):
    status = 422
    code = "invalid"


class MalformedInput(HeraldError):
    status = 400
    code = "malformed"


class TooLarge(HeraldError):
    status = 413
    code = "too_large"


class Conflict(HeraldError):
    status = 409
    code = "conflict"


class NotFound(HeraldError):
    status = 404
    code = "not_found"
