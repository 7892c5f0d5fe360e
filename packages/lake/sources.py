"""Where a run's CSV files come from: the generator, a local path or s3:// URI under the allowed
roots, or the Kaggle dataset through kagglehub. Refusals are ``SourceRefused`` with a clear message."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


class SourceRefused(ValueError):
    """The request names a source this deployment may not or cannot read."""


@dataclass(frozen=True)
class InputFile:
    path: Path  # local file
    name: str  # relative name kept in the raw layer (subfolders preserved)


def check_rows(rows: int, cap: int) -> None:
    if rows > cap:
        raise SourceRefused(f"rows={rows} exceeds the configured maximum of {cap} (LAKE_MAX_GENERATED_ROWS)")


def check_allowed(path: str, roots: list[Path]) -> None:
    """Refuse anything outside the configured roots (after resolving symlinks and ``..``)."""
    if path.startswith("s3://"):
        allowed = [str(r) for r in roots if str(r).startswith("s3:/")]
        norm = "s3://" + str(PurePosixPath(path.removeprefix("s3://")))
        for root in allowed:
            base = "s3://" + str(PurePosixPath(str(root).removeprefix("s3:/").lstrip("/")))
            if norm == base or norm.startswith(base.rstrip("/") + "/"):
                if ".." in PurePosixPath(path.removeprefix("s3://")).parts:
                    break
                return
        raise SourceRefused(
            f"{path} is not under an allowed s3:// root (LAKE_ALLOWED_ROOTS: {allowed or 'none'})"
        )
    target = Path(path).resolve()
    configured = [Path(r) for r in roots if not str(r).startswith("s3:/")]
    if not any(target == root or target.is_relative_to(root) for root in (r.resolve() for r in configured)):
        # The roots as configured, never resolved: an error must not reveal the server's folders
        # (an absolute root is only counted).
        shown = [str(r) for r in configured if not r.is_absolute()]
        hidden = sum(1 for r in configured if r.is_absolute())
        if hidden:
            shown.append(f"({hidden} absolute folder{'s' if hidden > 1 else ''})")
        raise SourceRefused(f"{path} is outside the allowed roots {shown} (LAKE_ALLOWED_ROOTS)")


def local_files(path: Path) -> list[InputFile]:
    """A CSV file, or every CSV under a folder (sorted, subfolders included)."""
    if not path.exists():
        raise SourceRefused(f"{path}: no such file or folder")
    if path.is_file():
        return [InputFile(path, path.name)]
    found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".csv")
    if not found:
        raise SourceRefused(f"{path}: the folder holds no .csv file")
    return [InputFile(p, p.relative_to(path).as_posix()) for p in found]


def kaggle_files(dataset: str, version: int | None) -> list[InputFile]:
    """Download (or read from kagglehub's cache) the dataset; a pinned version works offline."""
    try:
        import kagglehub
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise SourceRefused("kagglehub is not installed") from exc
    handle = dataset if version is None else f"{dataset}/versions/{version}"
    try:
        folder = Path(kagglehub.dataset_download(handle))
    except Exception as exc:
        hint = (
            ""
            if os.environ.get("KAGGLE_USERNAME") or Path("~/.kaggle/kaggle.json").expanduser().exists()
            else " (no Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY, or pin a cached version)"
        )
        raise SourceRefused(
            f"kaggle dataset {handle} is not available: {type(exc).__name__}: {exc}{hint}"
        ) from None
    return local_files(folder)
