"""The CI skip guard (tests/support/skip_guard.py): in CI a skip fails the run, outside it
does not, and only the allow-list lets a skip through."""

from __future__ import annotations

import pytest

from tests.support import skip_guard

PLUGIN = ("-p", "tests.support.skip_guard")

SKIPPING = """
import pytest

def test_passes():
    pass

def test_skips_at_run_time():
    pytest.skip("no frobnicator installed")

@pytest.mark.skip(reason="marked away")
def test_skipped_by_marker():
    pass

@pytest.mark.xfail(reason="known broken")
def test_expected_to_fail():
    assert False
"""


@pytest.fixture
def ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")


@pytest.fixture
def not_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)


@pytest.mark.usefixtures("ci")
def test_in_ci_every_kind_of_skip_fails_the_run_with_its_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sample=SKIPPING)

    result = pytester.runpytest(*PLUGIN)

    # A marker skips in the setup phase, so that one fails as an error.
    result.assert_outcomes(passed=1, failed=2, errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    for reason in ("no frobnicator installed", "marked away", "xfail: known broken"):
        result.stdout.fnmatch_lines([f"*skipped in CI: *{reason}*"])


@pytest.mark.usefixtures("ci")
def test_in_ci_a_module_skipped_at_collection_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_module="""
        import pytest
        pytest.importorskip("a_module_nobody_has")

        def test_never_collected():
            pass
        """
    )

    result = pytester.runpytest(*PLUGIN)

    assert result.ret != pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*skipped in CI: *a_module_nobody_has*"])


@pytest.mark.usefixtures("ci")
def test_in_ci_a_skip_named_in_the_allow_list_stays_a_skip(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_sample=SKIPPING)
    monkeypatch.setattr(
        skip_guard,
        "ALLOWED_SKIPS",
        {
            "test_sample.py::test_skips_at_run_time": "a reason",
            "test_sample.py::test_skipped_by_marker": "a reason",
            "test_sample.py::test_expected_to_fail": "a reason",
        },
    )

    result = pytester.runpytest(*PLUGIN)

    result.assert_outcomes(passed=1, skipped=2, xfailed=1)
    assert result.ret == pytest.ExitCode.OK


@pytest.mark.usefixtures("ci")
def test_in_ci_a_run_without_tests_does_not_pass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nothing="X = 1")

    result = pytester.runpytest(*PLUGIN)

    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


@pytest.mark.usefixtures("not_ci")
@pytest.mark.parametrize("value", [None, "", "0", "false"])
def test_outside_ci_skips_are_skips(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is not None:
        monkeypatch.setenv("CI", value)
    pytester.makepyfile(test_sample=SKIPPING)

    result = pytester.runpytest(*PLUGIN)

    result.assert_outcomes(passed=1, skipped=2, xfailed=1)
    assert result.ret == pytest.ExitCode.OK


def test_the_allow_list_is_empty() -> None:
    """Every test the suite has runs in CI; a new entry needs a reason and a review."""
    assert skip_guard.ALLOWED_SKIPS == {}
