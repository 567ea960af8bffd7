"""Lint is part of the tests: ruff, snakefmt and snakemake --lint."""

from __future__ import annotations

from .conftest import REPO, run, tool


def test_ruff_check() -> None:
    result = run([tool("ruff"), "check", "."], cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = run([tool("ruff"), "format", "--check", "."], cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakefmt() -> None:
    result = run([tool("snakefmt"), "--check", "Snakefile", "rules"], cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakemake_lint() -> None:
    result = run([tool("snakemake"), "--lint"], cwd=REPO, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Congratulations, your workflow is in a good condition!" in output, output
