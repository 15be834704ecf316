"""The agent <-> runner wire protocol, defined once.

Both ends import this module: the runner (``krunner``) and the agent-side test
harness (``imagekit.harness``); message payloads are built and parsed only here. Ports,
paths and label keys are in :mod:`krunner.contract`.  Every message on the REPL channels (ports
2000/2001) is a ZeroMQ multipart message of exactly two frames: an ASCII op or
record token and a payload whose encoding depends on the token.
"""

from __future__ import annotations

import enum
import json
from typing import Any

import msgpack
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Op(str, enum.Enum):
    """Inbound op tokens (agent -> runner)."""

    CLEAN = "clean"
    BUILD = "build"
    EXEC = "exec"
    CODE = "code"
    INPUT = "input"
    COMPLETE = "complete"
    INTERRUPT = "interrupt"
    STATUS = "status"
    EVENT = "event"
    GET_APPS = "get-apps"
    START_SERVICE = "start-service"
    SHUTDOWN_SERVICE = "shutdown-service"
    START_MODEL_SERVICE = "start-model-service"


class Record(str, enum.Enum):
    """Outbound record tokens (runner -> agent)."""

    STDOUT = "stdout"
    STDERR = "stderr"
    MEDIA = "media"
    HTML = "html"
    LOG = "log"
    WAITING_INPUT = "waiting-input"
    FINISHED = "finished"
    BUILD_FINISHED = "build-finished"
    CLEAN_FINISHED = "clean-finished"
    COMPLETION = "completion"
    STATUS = "status"
    SERVICE_RESULT = "service-result"
    APPS_RESULT = "apps-result"
    MODEL_SERVICE_RESULT = "model-service-result"
    MODEL_SERVICE_STATUS = "model-service-status"


#: The serial (FIFO) ops and the terminal record each one always ends with.
TERMINAL_RECORD: dict[Op, Record] = {
    Op.CLEAN: Record.CLEAN_FINISHED,
    Op.BUILD: Record.BUILD_FINISHED,
    Op.EXEC: Record.FINISHED,
    Op.CODE: Record.FINISHED,
}
SERIAL_OPS = frozenset(TERMINAL_RECORD)
#: console output records: carried verbatim (bytes), never JSON
STREAM_RECORDS = frozenset({Record.STDOUT, Record.STDERR})
#: what a client shows on the console of a run (the agent's ``outgoing_msg_types``)
CONSOLE_RECORDS = frozenset({Record.STDOUT, Record.STDERR, Record.MEDIA, Record.HTML, Record.LOG})
#: records that end one call of a run: its terminal records, or a prompt for input
RUN_END_RECORDS = frozenset({*TERMINAL_RECORD.values(), Record.WAITING_INPUT})

# ---------------------------------------------------------------- exit codes

EXIT_OK = 0
EXIT_INTERNAL_ERROR = -1
EXIT_NOTHING_TO_RUN = 127  # also: exec skipped after failed build, query mode unavailable
EXIT_CANCELLED = 130  # a serial op that was still queued when an interrupt came (128 + SIGINT)

# ---------------------------------------------------------------- payload models


class _Payload(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ExitPayload(_Payload):
    """``finished`` / ``build-finished`` / ``clean-finished``."""

    exit_code: int | None = Field(alias="exitCode")
    #: exit codes of the batch steps folded into this run (krunner extension; see krunner.batch_fold)
    steps: dict[str, int | None] | None = None


class WaitingInputPayload(_Payload):
    is_password: bool = False


class MediaPayload(_Payload):
    type: str
    data: Any


class CompleteRequest(_Payload):
    code: str = ""
    line: str | None = None  # legacy clients sent "line"
    cursor: int | None = None

    @property
    def text(self) -> str:
        return self.code if self.code or self.line is None else self.line


class CompletionPayload(_Payload):
    suggestions: list[str] = []
    error: str | None = None


class StatusPayload(_Payload):
    started_at: float


class EventRequest(_Payload):
    type: str
    data: Any = None


class AppInfo(_Payload):
    name: str
    url_template: str | None = None
    allowed_arguments: list[str] | None = None
    allowed_envs: list[str] | None = None


class AppsResult(_Payload):
    status: str = "done"
    data: list[AppInfo] = []
    error: str | None = None


class StartServiceRequest(_Payload):
    name: str
    port: int | None = None
    ports: list[int] = []
    protocol: str | None = None
    options: dict[str, Any] = {}
    arguments: dict[str, Any] | None = None
    envs: dict[str, Any] | None = None


class ServiceResult(_Payload):
    status: str  # started | running | failed
    error: str | None = None


class ModelServiceResult(_Payload):
    status: str  # started | running | failed
    error: str | None = None


class ModelServiceStatus(_Payload):
    model_name: str
    is_healthy: bool


# ---------------------------------------------------------------- encoding


class FrameError(ValueError):
    """An inbound message that does not follow the two-frame framing."""


def encode_json(obj: BaseModel | dict[str, Any] | list[Any] | str) -> bytes:
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(by_alias=True, exclude_none=True)
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": ")).encode("utf-8")


def exit_payload(exit_code: int | None, steps: dict[str, int | None] | None = None) -> bytes:
    """A terminal record's payload; *steps* are the exit codes of folded batch steps (krunner.batch_fold)."""
    body: dict[str, Any] = {"exitCode": exit_code}
    if steps:
        body["steps"] = steps
    return encode_json(body)


def parse_exit(payload: bytes) -> ExitPayload:
    """A terminal record's payload (``finished``, ``build-finished``, ``clean-finished``)."""
    return ExitPayload.model_validate_json(payload)


def waiting_input_payload(is_password: bool) -> bytes:
    return encode_json(WaitingInputPayload(is_password=is_password))


def media_payload(media_type: str, data: Any) -> bytes:
    """A ``media`` record: always JSON (upstream's raw HTML broke the agent, RE-1)."""
    return encode_json(MediaPayload(type=media_type, data=data))


def parse_media(payload: bytes) -> MediaPayload:
    return MediaPayload.model_validate_json(payload)


def encode_status(started_at: float) -> bytes:
    return msgpack.packb({"started_at": started_at}, use_bin_type=True)


def decode_status(payload: bytes) -> StatusPayload:
    return StatusPayload.model_validate(msgpack.unpackb(payload, raw=False))


def decode_frames(frames: list[bytes]) -> tuple[str, bytes]:
    """Validate an inbound multipart message and return ``(op_token, payload)``.

    Raises :class:`FrameError` with a specific reason for anything malformed.
    """
    if len(frames) != 2:
        raise FrameError(f"expected 2 frames, got {len(frames)}")
    token, payload = frames
    try:
        op = token.decode("ascii")
    except UnicodeDecodeError:
        raise FrameError(f"op token is not ASCII: {token[:32]!r}") from None
    return op, payload


def parse_json_payload(payload: bytes) -> Any:
    """Decode a UTF-8 JSON payload; raises ValueError with a readable reason."""
    try:
        return json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"payload is not UTF-8: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"payload is not valid JSON: {exc}") from None
    except RecursionError:
        raise ValueError("payload is not valid JSON: nested too deeply") from None


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
