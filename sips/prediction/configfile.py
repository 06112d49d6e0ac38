"""Reading a settings file a user names (a predictor's hyper-parameters): JSON, or YAML with PyYAML.

Shared by the adapters, so that every ``config=`` / ``--predictor-config`` file is read the same
way and fails with the same kind of sentence.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import AdapterError, MissingDependencyError

YAML_SUFFIXES = (".yaml", ".yml")


def read_config_file(
    path: str | os.PathLike, what: str = "config", *, error: type[Exception] = AdapterError
) -> dict[str, Any]:
    """The mapping stored in a JSON file, or a YAML file (``.yaml``/``.yml``).

    Args:
        path: the file.
        what: what the file is, for the messages (``"The {what} file {path} ..."``).
        error: the :class:`~sips.errors.SipsError` subclass raised for a bad file.

    Raises:
        error: the file is missing, cannot be parsed, or does not hold a mapping (one sentence).
        MissingDependencyError: a YAML file without PyYAML installed.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"The {what} file {path} does not exist.")
    text = path.read_text()
    if path.suffix.lower() in YAML_SUFFIXES:
        try:
            import yaml
        except ImportError:
            raise MissingDependencyError(
                f"Reading the YAML file {path} needs PyYAML; install it with `pip install pyyaml`."
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise error(f"The {what} file {path} is not valid YAML ({' '.join(str(err).split())}).") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise error(f"The {what} file {path} is not valid JSON ({err}).") from None
    if not isinstance(data, dict):
        raise error(f"The {what} file {path} does not hold a mapping (it holds {type(data).__name__}).")
    return data
