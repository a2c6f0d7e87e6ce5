"""The test suite's own rule: a missing outside program skips a test on a laptop and fails
it in CI, so CI cannot stay green on a silent skip."""

import pytest

from tests.helpers import needs


def test_a_missing_program_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="sox missing in CI"):
        needs(False, "sox", "apt-get install sox")
    needs(True, "sox", "apt-get install sox")  # present: nothing happens


def test_a_missing_program_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="sox not installed"):
        needs(False, "sox", "apt-get install sox")
