"""Entry point of every `py_pytest_test`: runs pytest on the test files given as arguments.

Writes the JUnit XML Bazel asks for, keeps pytest's cache out of the runfiles tree, points
tools that want a writable home at the test's private temporary directory, and turns pytest's
"no tests collected" into a failure (a test target that tests nothing is a mistake).
"""

from __future__ import annotations

import os
import sys

import pytest

NO_TESTS_COLLECTED = 5


def main() -> int:
    tmp = os.environ.get("TEST_TMPDIR")
    if tmp:
        os.environ.setdefault("MPLCONFIGDIR", os.path.join(tmp, "matplotlib"))
        os.environ.setdefault("HOME", tmp)
    args = [
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        "-o",
        "console_output_style=classic",
        "-rfEs",
        *sys.argv[1:],
    ]
    xml = os.environ.get("XML_OUTPUT_FILE")
    if xml:
        args.append(f"--junitxml={xml}")
    code = int(pytest.main(args))
    if code == NO_TESTS_COLLECTED:
        print("pytest collected no tests: a test target must test something", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
