"""What both page scripts share: the settings loop, the server check, work folders, messages."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from typing import Callable, Optional

from focuspull.errors import AuthError, FocuspullError, JobSpecError

from focuspull_resolve import settings
from focuspull_resolve.jobs import check_server

TITLE = "focuspull"


def server_message(endpoint: str, exc: BaseException) -> str:
    if isinstance(exc, AuthError):
        return (f"The focuspull server at {endpoint} refused the connection: {settings.error_text(exc)}\n\n"
                "Set FOCUSPULL_TOKEN for Resolve to the server's token and run the script again.")
    return (f"The focuspull server is not answering at {endpoint}.\n\n"
            "Start it on this machine (a terminal):  focuspull serve --root <folder of your renders>\n"
            "or put the address of a running server in the Server field, then run the script again.")


def ask_settings(ui, title: str, values: dict, errors: dict, general: str,
                 validate: Callable[[dict], None]) -> Optional[dict]:
    """Show the generated window until its values make a valid job (checked locally with
    ``validate``, which raises errors carrying ``.field``); None when the user closes it."""
    while True:
        answer = ui.form(title, settings.rows(values, errors), general)
        if answer is None:
            return None
        values = settings.from_form(answer)
        errors, general = {}, ""
        try:
            validate(settings.job_dict(values))
        except (settings.FieldError, JobSpecError) as exc:
            key, text = settings.place_error(exc)
            if key:
                errors[key] = text
            else:
                general = text
            continue
        return values


def connect(ui, endpoint: str) -> Optional[dict]:
    """The server's hello, or None after telling the user what to do."""
    try:
        return check_server(endpoint)
    except FocuspullError as exc:
        ui.message(TITLE, server_message(endpoint, exc))
        return None


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "clip"


def make_workdir(near: str, name: str) -> str:
    """A new folder for one run: ``$FOCUSPULL_WORK`` or beside the comp / project media,
    else the temp folder.  Removed whole when the run fails."""
    stamp = time.strftime("%Y%m%d_%H%M%S")
    roots = [os.environ.get("FOCUSPULL_WORK") or (os.path.join(os.path.dirname(near), "focuspull") if near else ""),
             os.path.join(tempfile.gettempdir(), "focuspull")]
    for root in [r for r in roots if r]:
        try:
            os.makedirs(root, exist_ok=True)
            return tempfile.mkdtemp(prefix=f"{safe_name(name)}_{stamp}_", dir=root)
        except OSError:
            continue  # read-only camera media, a missing share: fall back to the temp folder
    raise OSError(f"cannot create a work folder in {' or '.join(r for r in roots if r)}")


def remove_workdir(path: Optional[str]) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)


def field_error(exc: BaseException) -> bool:
    """A refusal the user fixes in the settings window (it names a field shown there)."""
    return bool(settings.place_error(exc)[0])
