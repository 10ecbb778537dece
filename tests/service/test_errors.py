"""service/errors.py and service/handlers.py: one class per code, each with its status, and the
same codes as the SDK's error classes."""

from __future__ import annotations

import re
from pathlib import Path

from service import errors
from service.handlers import STATUS, status_of
from vae_client.errors import ERROR_BY_CODE

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def all_classes() -> list[type[errors.ServiceError]]:
    found, pending = [], list(errors.ServiceError.__subclasses__())
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_every_error_class_has_its_own_code_and_a_status():
    classes = all_classes()
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes)), f"two classes share a code: {sorted(codes)}"
    assert {cls for cls in classes} == set(STATUS), "handlers.STATUS must map exactly the error classes"


def test_the_service_and_the_sdk_name_the_same_codes():
    assert errors.error_codes() == set(ERROR_BY_CODE)


def test_docs_api_lists_every_code():
    documented = set(re.findall(r"`([a-z_]+)` \(\d{3}", API_DOC.read_text()))
    assert documented == errors.error_codes()


def test_a_subclass_answers_with_its_own_status():
    assert status_of(errors.InvalidImage("x")) == 422
    assert status_of(errors.QueueFull(1, 2, 3, 4)) == 429
    assert status_of(errors.ModelNotFound("x", ["mnist"])) == 404
