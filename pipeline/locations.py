"""Where the commands look for what they were not given, so that each works from any folder.

- **Inputs left at their default** (``data/gold``, ``data/transfer``, ``data/new_study``, ``params.yaml``,
  ``reports/metrics.json``...): the working folder's, when it has one; else the one that ships with imri
  (:func:`shipped`): the repository the package sits in, for an editable install (``pip install -e``, as
  ``make setup`` does). A wheel carries only the package (``pyproject.toml`` package-data), not the data.
- **Outputs** (``--out``) are written relative to the working folder.
- **The default model** of ``imri code`` (:func:`pipeline.model.train.default_model`): ``./models/imri-default``,
  else the repository's ``models/imri-default`` (a DVC output, built by ``make demo``), else the user's
  ``<user data>/models/imri-default``; when none exists, it is trained once from the bundled gold set into
  the user's folder, with a message saying so.
- **Retraining** never writes over another model folder (:class:`ModelDestination`): without ``--out``,
  ``imri train`` writes ``models/<name>-<version>``, a new folder for each version.

The user's data folder is ``$IMRI_DATA``, else platformdirs' user data folder for ``imri``
(``~/.local/share/imri`` on Linux).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from pipeline.errors import InputError

PACKAGE = Path(__file__).resolve().parent
REPOSITORY = PACKAGE.parent  # the checkout, when the package is installed from it in editable mode
DEFAULT_MODEL = Path("models") / "imri-default"
BUNDLED_GOLD = Path("data") / "gold"


def repository() -> Path | None:
    """The imri repository the package sits in, or None (a wheel installed into site-packages)."""
    marker = REPOSITORY / "pyproject.toml"
    try:
        return REPOSITORY if marker.is_file() and 'name = "imri-autocode"' in marker.read_text("utf-8") else None
    except (OSError, UnicodeDecodeError):
        return None


def shipped(path: Path) -> Path:
    """A default input: ``path`` in the working folder when it is there, else the repository's, else ``path``.

    An absolute path is returned as it is; so is a path found nowhere (the command then names it in its error).
    """
    path = Path(path)
    if path.is_absolute() or path.exists():
        return path
    repo = repository()
    if repo is not None and (repo / path).exists():
        return repo / path
    return path


def is_bundled_gold(folder: Path) -> bool:
    """Whether ``folder`` is the synthetic gold set that ships with imri (the repository's ``data/gold``), by
    where it is: a copy elsewhere, or a team's own gold set, is not."""
    repo = repository()
    if repo is None:
        return False
    try:
        return Path(folder).resolve() == (repo / BUNDLED_GOLD).resolve()
    except OSError:
        return False


def gold_names(folders: list[Path] | tuple[Path, ...]) -> list[str]:
    """The gold sets in words: "the bundled synthetic gold set", or a team's gold set by its folder's name."""
    names = []
    for folder in folders:
        name = "the bundled synthetic gold set" if is_bundled_gold(folder) else Path(folder).resolve().name
        if name not in names:
            names.append(name)
    return names


def model_name(folders: list[Path] | tuple[Path, ...]) -> str:
    """The name of a model trained on the gold set(s) ``folders``: ``imri-default`` on the bundled one alone,
    else ``imri-`` and the folder names of the others (a model folder's name is ``<name>-<version>``)."""
    import re

    own = [Path(f).resolve().name for f in folders if not is_bundled_gold(f)]
    if not own:
        return DEFAULT_MODEL.name
    return "imri-" + "+".join(re.sub(r"[^\w.+-]+", "-", name).strip("-.") or "gold" for name in own)


def scores_note(folders: list[Path] | tuple[Path, ...], bundled: str) -> str:
    """What scores on the gold set(s) ``folders`` are: ``bundled`` (the synthetic-data warning) on the bundled
    gold set alone; else a clause naming the team's gold set(s) by folder (no word "synthetic")."""
    names = gold_names(folders)
    if names == ["the bundled synthetic gold set"]:
        return bundled
    shown = [n if n.startswith("the bundled") else repr(n) for n in names]
    listed = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
    sets = "gold set" if len(shown) == 1 else "gold sets"
    return f"scores cross-validated by transcript on the {sets} {listed}: how the model codes transcripts like these"


def cache_dir() -> Path:
    """The user's cache folder: ``$IMRI_CACHE`` or ``~/.cache/imri``."""
    return Path(os.environ.get("IMRI_CACHE") or Path.home() / ".cache" / "imri")


def user_data_dir() -> Path:
    """The user's imri data folder: ``$IMRI_DATA``, else platformdirs' user data folder for ``imri``."""
    if os.environ.get("IMRI_DATA"):
        return Path(os.environ["IMRI_DATA"])
    import platformdirs

    return Path(platformdirs.user_data_dir("imri", appauthor=False))


def model_candidates() -> list[Path]:
    """Where ``imri code`` looks for its default model, in order."""
    candidates = [DEFAULT_MODEL]
    repo = repository()
    if repo is not None:
        candidates.append(repo / DEFAULT_MODEL)
    candidates.append(user_data_dir() / "models" / DEFAULT_MODEL.name)
    return candidates


def refuse_existing_model(out: Path, force: bool) -> None:
    """An ``--out`` that already holds something is refused (one line) unless ``force``: never over a model."""
    if out.exists() and not force and (not out.is_dir() or any(out.iterdir())):
        raise InputError(
            "already there: a model folder is never written over; give a new --out, leave --out out (a new "
            "folder models/<name>-<version>), or add --force",
            out,
        )


class ModelDestination:
    """Where ``imri train`` writes: ``--out`` as given, or ``models/<name>-<version>`` once the version is known.

    Without ``--out`` the model is trained into a hidden folder beside its destination and moved there
    whole (:meth:`place`); a folder of that name already there is refused unless ``force``.
    """

    def __init__(self, out: Path | None, force: bool = False) -> None:
        self.out, self.force = out, force
        if out is not None:
            refuse_existing_model(out, force)
            self.folder = out
            self._staging: Path | None = None
        else:
            # a models/ folder made here goes again with the staging folder if nothing was placed in it
            self._made_parent = not DEFAULT_MODEL.parent.exists()
            DEFAULT_MODEL.parent.mkdir(parents=True, exist_ok=True)
            self._staging = Path(tempfile.mkdtemp(prefix=".training-", dir=DEFAULT_MODEL.parent))
            self.folder = self._staging / "model"

    def place(self, card: dict) -> Path:
        """The model folder, in its place: ``--out``, or ``models/<name>-<version>`` for this card."""
        if self._staging is None:
            return self.folder
        target = DEFAULT_MODEL.parent / f"{card['name']}-{card['version']}"
        try:
            if target.exists() and not self.force:
                raise InputError(
                    "already there (a model of this version: the same data, encoder, settings and codebook); "
                    "nothing written, add --force to write it again",
                    target,
                )
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            self.folder.rename(target)
        finally:
            self.discard()
        return target

    def discard(self) -> None:
        """Remove the hidden training folder (after a failure, or once the model is in place)."""
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            if self._made_parent:
                with contextlib.suppress(OSError):  # not empty: a model was placed there
                    DEFAULT_MODEL.parent.rmdir()
