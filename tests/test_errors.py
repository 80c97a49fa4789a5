"""Every error the package raises on purpose is a LongClipError, and keeps the built-in base that
callers catching ``ValueError``, ``FileNotFoundError``, ``TypeError`` ... expect."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import longclip_diffusers
from longclip_diffusers import errors

PACKAGE = Path(longclip_diffusers.__file__).parent

#: Every LongClipError class, by name.
LONGCLIP_ERRORS = {
    name: cls for name, cls in vars(errors).items() if inspect.isclass(cls) and issubclass(cls, errors.LongClipError)
}

#: (file, raised name) -> why that raise is not a LongClipError.
ALLOWED: dict[tuple[str, str], str] = {
    ("__init__.py", "AttributeError"): "a module __getattr__ must raise AttributeError (PEP 562)",
    ("cli/options.py", "argparse.ArgumentTypeError"): "argparse turns it into a usage error naming the option",
    ("training/config.py", "argparse.ArgumentTypeError"): "argparse turns it into a usage error naming the option",
    ("demo/gradio_app.py", "gr.Error"): "gradio shows the message of a gr.Error in the page",
    ("evaluation/safe_pickle.py", "pickle.UnpicklingError"): (
        "pickle.Unpickler.find_class refuses a global with it; load_array_pickle turns it into DataFormatError"
    ),
    ("io/loading.py", "LocalEntryNotFoundError"): (
        "huggingface_hub's 'not in the cache' error, raised inside _hub_errors, which turns it into "
        "ModelNotAvailableError as it does the hub's own"
    ),
}


def raises_outside_the_hierarchy(source: str) -> list[tuple[int, str]]:
    """``(line, raised name)`` of each ``raise`` in ``source`` that is neither a bare re-raise, nor
    of a LongClipError class, nor of a call to a function of the module annotated to return one."""
    tree = ast.parse(source)
    error_factories = {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        and node.returns is not None
        and ast.unparse(node.returns) in LONGCLIP_ERRORS
    }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Raise) or node.exc is None:
            continue
        raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        name = ast.unparse(raised)
        if name in LONGCLIP_ERRORS or name in error_factories:
            continue
        found.append((node.lineno, name))
    return found


def test_the_package_raises_only_longclip_errors_but_for_the_listed_protocols():
    unexpected, used = [], set()
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        for line, name in raises_outside_the_hierarchy(path.read_text(encoding="utf-8")):
            if (relative, name) in ALLOWED:
                used.add((relative, name))
            else:
                unexpected.append(f"{relative}:{line}: raise {name}")
    assert not unexpected, "raise a LongClipError subclass (errors.py) instead:\n" + "\n".join(unexpected)
    assert used == set(ALLOWED), f"allowed exceptions no longer raised, drop them: {set(ALLOWED) - used}"


@pytest.mark.parametrize(
    "source",
    [
        "raise ValueError('x')",
        "raise FileNotFoundError",
        "def f():\n    raise TypeError('x') from None",
        "def make() -> ValueError:\n    return ValueError('x')\nraise make()",
    ],
)
def test_the_check_finds_a_raise_of_a_built_in_error(source):
    assert raises_outside_the_hierarchy(source)


@pytest.mark.parametrize(
    "source",
    [
        "try:\n    pass\nexcept OSError:\n    raise",
        "raise InvalidArgumentError('x') from None",
        "def make() -> CheckpointError:\n    return CheckpointError('x')\nraise make() from None",
    ],
)
def test_the_check_accepts_re_raises_and_longclip_errors(source):
    assert not raises_outside_the_hierarchy(source)


@pytest.mark.parametrize(
    ("error", "built_in"),
    [
        (errors.CheckpointError, ValueError),
        (errors.IncompatibleEncoderError, ValueError),
        (errors.InvalidArgumentError, ValueError),
        (errors.DataFormatError, ValueError),
        (errors.InputNotFoundError, FileNotFoundError),
        (errors.UnsupportedModelError, TypeError),
        (errors.OutputExistsError, FileExistsError),
        (errors.ModelNotAvailableError, OSError),
        (errors.MissingDependencyError, ImportError),
        (errors.TrainingDivergedError, FloatingPointError),
        (errors.TextTooLongError, RuntimeError),
        (errors.UnsupportedOptionError, ValueError),
    ],
)
def test_each_error_is_a_longclip_error_and_keeps_its_built_in_base(error, built_in):
    assert issubclass(error, errors.LongClipError) and issubclass(error, built_in)


def test_every_error_class_is_public_api():
    for name in LONGCLIP_ERRORS:
        assert name in longclip_diffusers.__all__
        assert getattr(longclip_diffusers, name) is LONGCLIP_ERRORS[name]
