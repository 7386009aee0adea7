"""Modal errors as GenerationErrors, and the start-up credential check (modal 1.6).

``transient`` says whether a retry may succeed: Modal service trouble, an expired output, a
crashed container. Shared by the pool (``gpu.modal_pool``) and the deployment control
(``gpu.modal_deployment``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import modal.config
import modal.exception as mx

from gpu.protocol import GenerationError

_TRANSIENT_MODAL = (
    mx.ConnectionError, mx.ServiceError, mx.InternalError, mx.InternalFailure,
    mx.ResourceExhaustedError, mx.RemoteError, mx.OutputExpiredError,
)  # fmt: skip


class ModalConfigError(RuntimeError):
    """Modal is selected but no credentials are configured; the message says what is missing."""


def check_credentials(get: Callable[[str], Any] | None = None) -> None:
    """Fail fast at startup when Modal has no token (env vars or ~/.modal.toml).

    ``get`` reads a Modal setting (default ``modal.config.config.get``, which resolves
    MODAL_TOKEN_ID / MODAL_TOKEN_SECRET, then the active profile of ``~/.modal.toml`` or
    $MODAL_CONFIG_PATH). Never prints token values.

    Raises:
        ModalConfigError: token id and/or secret missing.
    """
    read = get or modal.config.config.get
    missing = [f"MODAL_{key.upper()}" for key in ("token_id", "token_secret") if not read(key)]
    if missing:
        raise ModalConfigError(
            f"the Modal GPU backend is selected but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set and ~/.modal.toml (or "
            "$MODAL_CONFIG_PATH) has no token: run `modal token new` or export "
            "MODAL_TOKEN_ID and MODAL_TOKEN_SECRET"
        )


def map_modal_error(exc: BaseException, *, where: str) -> GenerationError:
    """A GenerationError for what Modal (or the remote ``generate``) raised.

    ``where`` names the deployment (app/class) for the message. ``transient`` is True when a
    retry may succeed: Modal service trouble, an expired output, a crashed container.
    """
    if isinstance(exc, GenerationError):
        return exc
    if isinstance(exc, mx.AuthError | mx.PermissionDeniedError):
        return GenerationError(
            f"Modal rejected the credentials ({type(exc).__name__}): check MODAL_TOKEN_ID/"
            "MODAL_TOKEN_SECRET or ~/.modal.toml",
            transient=False,
        )
    if isinstance(exc, mx.NotFoundError):
        return GenerationError(
            f"Modal has no {where} deployed ({exc}): run `modal deploy gpu/modal_app.py`",
            transient=False,
        )
    if isinstance(exc, mx.FunctionTimeoutError):
        return GenerationError(
            f"{where}.generate exceeded its Modal timeout: raise REWIND_MODAL_TIMEOUT_S and "
            "redeploy, or use fewer inference steps",
            transient=False,
        )
    if isinstance(exc, mx.OutputExpiredError):
        return GenerationError(
            f"the result of {where}.generate expired on Modal before it was collected",
            transient=True,
        )
    if isinstance(exc, _TRANSIENT_MODAL):
        return GenerationError(f"Modal {type(exc).__name__}: {exc}"[:400], transient=True)
    if isinstance(exc, TimeoutError):
        return GenerationError(f"Modal did not answer in time ({where})", transient=True)
    if isinstance(exc, mx.Error):
        return GenerationError(f"Modal {type(exc).__name__}: {exc}"[:400], transient=False)
    if isinstance(exc, ValueError | TypeError):
        # Raised by check_request in the container: the request itself is wrong.
        return GenerationError(f"{where} rejected the request: {exc}"[:400], transient=False)
    return GenerationError(f"{where}.generate failed: {type(exc).__name__}: {exc}"[:400])
