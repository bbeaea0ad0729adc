#!/usr/bin/env python3
"""Move ``vault/``'s flat modules into sub-packages that draw its layers, and rewrite every
reference to them across the repository (issue #14).

    python scripts/relayer.py --dry-run   # print the moves and the files it would change
    python scripts/relayer.py             # git mv, then rewrite in place

The layers, bottom to top (a module imports only from its own layer or the ones below;
``tests/test_public_api.py`` checks it):

    vault/ (root)     errors, config, actors, localtime, plaintext, _home: words every layer uses
    vault/storage/    bytes at rest: durable writes, evs1 encryption, keys, object stores, catalog
    vault/ledger/     the chain of custody: entries, Merkle tree, checkpoints, signing keys
    vault/vault.py    the Vault object: storage and ledger wired together
    vault/access/     who is acting: identity, OIDC, credentials, web sessions, refusals
    vault/casework/   what people do with footage: cases, holds, SARs, shares, retention, policy
    vault/__init__.py the public surface (re-exports)

The script is data (the tables below) and small functions. It is deterministic and re-runnable:
a module already at its new place is not moved again, and rewriting only ever matches the old
names, so a second run changes nothing. It refuses to run (listing them) when ``vault/`` holds a
module the table does not place: add each new module to ``MODULES`` first.

What it rewrites, in every tracked text file except this one:
  1. Python imports, through the AST: ``from vault.x import``, ``import vault.x``,
     ``from vault import x`` (split when the names mix modules and objects) and the relative
     imports inside ``vault/`` (resolved from where the module was, written for where it is:
     relative inside one sub-package, absolute across them).
  2. Dotted names ``vault.x`` in code of modules that import ``vault`` as a module, and in
     strings, comments and other text (monkeypatch targets, ``:mod:`` roles, logger names);
     ``vault.x.name`` in prose is rewritten only when ``name`` is defined at the top of module
     ``x``, so an instance's attribute (``vault.keys.unwrap`` on a ``Vault`` called ``vault``)
     is left alone.
  3. Paths ``vault/x.py`` and ``vault/migrations`` in docs and docstrings.
  4. The package data in ``pyproject.toml`` (the migrations moved beside ``db.py``).
Then it regenerates the generated docs (``scripts/gen_docs.py``).
"""

from __future__ import annotations

import argparse
import ast
import io
import re
import subprocess
import sys
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "vault"

# Old module stem (vault/<stem>.py) -> new dotted path under vault. Every module in vault/ must
# be here; one that stays at the root maps to itself.
MODULES: dict[str, str] = {
    # The root: words every layer uses.
    "errors": "errors",
    "config": "config",
    "access": "actors",  # Actor, Role, Purpose: the "who" of every custody event
    "localtime": "localtime",
    "plaintext": "plaintext",
    "_home": "_home",
    # Storage: bytes at rest.
    "durable": "storage.durable",
    "_segments": "storage._segments",
    "crypto": "storage.crypto",
    "keys": "storage.keys",
    "pkcs11": "storage.pkcs11",
    "objectstore": "storage.objectstore",
    "catalog": "storage.catalog",
    "db": "storage.db",
    # Ledger: the chain of custody.
    "custody": "ledger.custody",
    "merkle": "ledger.merkle",
    "checkpoint": "ledger.checkpoint",
    "ledger_keys": "ledger.signing_keys",
    "catalog_binding": "ledger.catalog_binding",
    "_export_verifier": "ledger._export_verifier",
    "stored_tree": "ledger.stored_tree",  # the Merkle tree's stored subtrees (issue #15)
    "incremental_verify": "ledger.incremental_verify",  # custody verify --incremental (issue #15)
    # The Vault object, between the ledger and access.
    "vault": "vault",
    # Access: who is acting.
    "identity": "access.identity",
    "oidc": "access.oidc",
    "denials": "access.denials",
    "credentials": "access.credentials",
    "web_sessions": "access.web_sessions",
    # Casework: what people do with footage. The policy reads case membership, shares and SAR
    # windows, so it sits here, above the tables it asks about.
    "cases": "casework.cases",
    "holds": "casework.holds",
    "sar": "casework.sar",
    "shares": "casework.shares",
    "disclosure": "casework.disclosure",
    "retention": "casework.retention",
    "fixity": "casework.fixity",
    "rekey": "casework.rekey",
    "jobs": "casework.jobs",
    "search": "casework.search",
    "sites": "casework.sites",
    "policy": "casework.policy",
}

# Folders (not modules) that move, old -> new, relative to vault/.
FOLDERS: dict[str, str] = {
    "migrations": "storage/migrations",  # beside db.py, which finds them by its own __file__
}

# Each new sub-package's __init__.py (written only when missing).
SUBPACKAGES: dict[str, str] = {
    "storage": (
        "Storage: bytes at rest. Durable writes, the ``evs1`` encryption format, key providers,\n"
        "object stores and the catalog tables. Imports only the root modules of :mod:`vault`."
    ),
    "ledger": (
        "The chain of custody: custody entries (format v1), the RFC 6962 Merkle tree, C2SP\n"
        "checkpoints and the ledger's signing keys. Imports only :mod:`vault.storage` and the root."
    ),
    "access": (
        "Who is acting: users, API tokens, OpenID Connect, local credentials, web sessions and\n"
        "refused requests. Imports the :class:`vault.vault.Vault` object and the layers below it."
    ),
    "casework": (
        "What people do with footage: cases, holds, subject access requests, shares, disclosure,\n"
        "retention, fixity, rekeying, jobs, search, sites, and the access policy over all of them.\n"
        "The top layer of the core; only :mod:`vault`'s ``__init__`` and the other packages sit above."
    ),
}

# Literal text replacements in one file, old -> new (each applied only where old is present).
LITERALS: dict[str, list[tuple[str, str]]] = {
    "pyproject.toml": [
        (
            'vault = ["py.typed", "migrations/*.ini", "migrations/*.py", "migrations/versions/*.py"]',
            'vault = ["py.typed"]\n'
            '"vault.storage" = ["migrations/*.ini", "migrations/*.py", "migrations/*.mako",'
            ' "migrations/versions/*.py"]',
        ),
    ],
}

# Run after the rewrite: generated docs quote docstrings and help texts that name module paths.
AFTERWARDS: list[list[str]] = [[sys.executable, "scripts/gen_docs.py"]]

SKIP_FILES = {"scripts/relayer.py"}
TEXT_SUFFIXES = {
    ".py", ".md", ".toml", ".ini", ".cfg", ".txt", ".yml", ".yaml", ".html", ".mako", ".sh",
    ".rst", ".json", ".j2", "",
}


class RelayerError(Exception):
    """The repository is not in a state the script can move (an unmapped module, a clash)."""


@dataclass
class Plan:
    """What one run does: the moves, and the old -> new dotted names it rewrites."""

    moves: list[tuple[str, str]] = field(default_factory=list)  # git paths, old -> new
    new_files: dict[str, str] = field(default_factory=dict)  # path -> text
    renames: dict[str, str] = field(default_factory=dict)  # "vault.x" -> "vault.pkg.y"
    top_names: dict[str, set[str]] = field(default_factory=dict)  # "vault.x" -> its names
    moved_from: dict[str, str] = field(default_factory=dict)  # new path -> old dotted module


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def module_path(dotted: str) -> str:
    """``vault.ledger.custody`` -> ``vault/ledger/custody.py``."""
    return dotted.replace(".", "/") + ".py"


def top_level_names(path: Path) -> set[str]:
    """Names bound at the top of a module (defs, classes, assignments, imports)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def plan() -> Plan:
    """Check ``vault/`` against the tables and work out this run's moves and renames.

    Raises RelayerError listing every module the table does not place, or a clash (old and
    new file both present).
    """
    base = ROOT / PACKAGE
    at_root = set(MODULES) | {new for new in MODULES.values() if "." not in new}
    unmapped = sorted(
        p.name for p in base.glob("*.py") if p.stem not in at_root | {"__init__"}
    )
    if unmapped:
        raise RelayerError(
            "vault/ holds modules the mapping does not place; add them to MODULES in "
            "scripts/relayer.py: " + ", ".join(unmapped)
        )
    result = Plan()
    for old, new in MODULES.items():
        old_path, new_path = f"{PACKAGE}/{old}.py", module_path(f"{PACKAGE}.{new}")
        here = (ROOT / old_path).exists()
        if old != new:
            # A name that is also a new sub-package (access) is ambiguous once moved: rewrite
            # it only in the run that moves it, so a second run leaves vault.access.* alone.
            ambiguous = old in SUBPACKAGES
            if here or not ambiguous:
                result.renames[f"{PACKAGE}.{old}"] = f"{PACKAGE}.{new}"
            source = ROOT / (old_path if here else new_path)
            if source.exists():
                result.top_names[f"{PACKAGE}.{old}"] = top_level_names(source)
        if here and old_path != new_path:
            if (ROOT / new_path).exists():
                raise RelayerError(f"both {old_path} and {new_path} exist; move one by hand")
            result.moves.append((old_path, new_path))
            result.moved_from[new_path] = f"{PACKAGE}.{old}"
    for old, new in FOLDERS.items():
        if (base / old).is_dir() and not (base / new).exists():
            result.moves.append((f"{PACKAGE}/{old}", f"{PACKAGE}/{new}"))
    for sub, doc in SUBPACKAGES.items():
        init = f"{PACKAGE}/{sub}/__init__.py"
        if not (ROOT / init).exists():
            result.new_files[init] = f'"""{doc}"""\n'
    return result


# --- rewriting -------------------------------------------------------------------------------


def _package_of(path: str) -> str:
    """The dotted package a module file is in (``vault/ledger/custody.py`` -> ``vault.ledger``)."""
    parts = Path(path).with_suffix("").parts
    if parts[-1] == "__init__":
        return ".".join(parts[:-1])
    return ".".join(parts[:-1])


def _resolve(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _rename(dotted: str, renames: dict[str, str]) -> str:
    for old, new in renames.items():
        if dotted == old or dotted.startswith(old + "."):
            return new + dotted[len(old):]
    return dotted


def _spell(target: str, importer_package: str) -> tuple[int, str]:
    """(level, module) to write ``from ... import`` of ``target`` from ``importer_package``."""
    if importer_package.split(".")[0] == PACKAGE and target.startswith(importer_package + "."):
        return 1, target[len(importer_package) + 1:]
    return 0, target


def _spell_package(parent: str, importer_package: str) -> tuple[int, str]:
    """(level, module) to write ``from ... import <module>`` of a module in package ``parent``."""
    if parent == importer_package and parent.split(".")[0] == PACKAGE:
        return 1, ""
    return _spell(parent, importer_package)


def _from_line(level: int, module: str, names: list[ast.alias], indent: str) -> str:
    spelled = [a.name + (f" as {a.asname}" if a.asname else "") for a in names]
    head = f"from {'.' * level}{module} import "
    line = head + ", ".join(spelled)
    if len(indent) + len(line) <= 100:
        return line
    inner = "".join(f"{indent}    {s},\n" for s in spelled)
    return f"{head}(\n{inner}{indent})"


def rewrite_imports(text: str, path: str, p: Plan) -> str:
    """Rewrite the import statements of one Python file (see the module docstring, rule 1)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text
    old_module = p.moved_from.get(path)
    # Relative imports are resolved from where the module was before this run's move.
    resolve_package = old_module.rsplit(".", 1)[0] if old_module else _package_of(path)
    importer_package = _package_of(path)
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    edits: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        start = offsets[node.lineno - 1] + node.col_offset
        end = offsets[node.end_lineno - 1] + node.end_col_offset  # type: ignore[operator]
        indent = lines[node.lineno - 1][: node.col_offset]
        if isinstance(node, ast.Import):
            changed = False
            parts = []
            for a in node.names:
                new = _rename(a.name, p.renames)
                changed |= new != a.name
                parts.append(new + (f" as {a.asname}" if a.asname else ""))
            if changed:
                edits.append((start, end, "import " + ", ".join(parts)))
            continue
        module = _resolve(node, resolve_package)
        if module == PACKAGE:
            # from vault import x, Y: a name that is a moved module goes to its new package.
            groups: dict[str, list[ast.alias]] = {}
            for a in node.names:
                full = f"{PACKAGE}.{a.name}"
                new = _rename(full, p.renames)
                if new == full:
                    groups.setdefault(PACKAGE, []).append(a)
                    continue
                parent, _, leaf = new.rpartition(".")
                asname = a.asname or (a.name if leaf != a.name else None)
                groups.setdefault(parent, []).append(ast.alias(name=leaf, asname=asname))
            if list(groups) == [PACKAGE] and not (node.level and old_module):
                continue
            stmts = [
                _from_line(*_spell_package(parent, importer_package), names, indent)
                for parent, names in groups.items()
            ]
            replacement = ("\n" + indent).join(stmts)
            if replacement != text[start:end]:
                edits.append((start, end, replacement))
            continue
        target = _rename(module, p.renames)
        if target == module and not (node.level and old_module):
            continue
        level, mod = _spell(target, importer_package)
        segment = text[start:end]
        head = re.match(r"from\s+[.\w]+\s+import", segment)
        assert head is not None, (path, segment)
        new_segment = f"from {'.' * level}{mod} import" + segment[head.end():]
        if "\n" not in new_segment and len(indent) + len(new_segment) > 100:
            new_segment = _from_line(level, mod, list(node.names), indent)
        if new_segment != segment:
            edits.append((start, end, new_segment))

    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _string_spans(text: str) -> list[tuple[int, int]] | None:
    """Character spans of strings and comments in Python source (None if it does not tokenize)."""
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    spans = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in (tokenize.STRING, tokenize.COMMENT):
                spans.append(
                    (offsets[tok.start[0] - 1] + tok.start[1], offsets[tok.end[0] - 1] + tok.end[1])
                )
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return None
    return spans


def _binds_vault_module(text: str) -> bool:
    """Whether the code's name ``vault`` is the package (``import vault`` / ``import vault.x``)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return False
    return any(
        isinstance(n, ast.Import) and any(
            a.asname is None and a.name.split(".")[0] == PACKAGE for a in n.names
        )
        for n in ast.walk(tree)
    )


def rewrite_names(text: str, path: str, p: Plan) -> str:
    """Rewrite dotted names and paths outside import statements (module docstring, rules 2-3)."""
    is_py = path.endswith(".py")
    spans = _string_spans(text) if is_py else None
    code_is_module = is_py and _binds_vault_module(text)
    subpackage_children = {
        old: {n.split(".")[2] for n in p.renames.values() if n.startswith(old + ".")}
        for old in p.renames
    }

    def in_prose(pos: int) -> bool:
        if not is_py:
            return True
        if spans is None:
            return True
        return any(a <= pos < b for a, b in spans)

    def dotted(match: re.Match[str]) -> str:
        old, attr = match.group(1), match.group(2)
        if attr and attr in subpackage_children.get(old, set()):
            return match.group(0)
        prose = in_prose(match.start())
        if not prose and not code_is_module:
            return match.group(0)
        if prose and attr and attr not in p.top_names.get(old, set()):
            return match.group(0)
        return p.renames[old] + (f".{attr}" if attr else "")

    def from_package(match: re.Match[str]) -> str:
        # Python quoted in a string (a script a test runs in a child process): one line.
        if not in_prose(match.start()):
            return match.group(0)
        names = [n.strip() for n in match.group(1).split(",")]
        targets = {_rename(f"{PACKAGE}.{n}", p.renames) for n in names}
        parents = {t.rpartition(".")[0] for t in targets}
        moved = [n for n in names if f"{PACKAGE}.{n}" in p.renames]
        if not moved:
            return match.group(0)
        if len(parents) != 1 or len(moved) != len(names):
            raise RelayerError(f"{path}: split this import by hand: {match.group(0)!r}")
        spelled = []
        for name in names:
            leaf = _rename(f"{PACKAGE}.{name}", p.renames).rpartition(".")[2]
            spelled.append(leaf if leaf == name else f"{leaf} as {name}")
        return f"from {parents.pop()} import {', '.join(spelled)}"

    text = re.sub(
        rf"(?<![\w.])from {PACKAGE} import ([A-Za-z_]\w*(?:, *[A-Za-z_]\w*)*)(?=[ \t]*$)",
        from_package, text, flags=re.MULTILINE,
    )
    if p.renames:
        alternatives = "|".join(re.escape(o) for o in sorted(p.renames, key=len, reverse=True))
        pattern = re.compile(rf"(?<![\w./])({alternatives})(?![\w])(?:\.([A-Za-z_]\w*))?")
        text = pattern.sub(dotted, text)
        paths = {module_path(o): module_path(n) for o, n in p.renames.items()}
        path_pattern = re.compile(
            r"(?<![\w/.])(" + "|".join(re.escape(o) for o in sorted(paths, key=len, reverse=True))
            + r")(?![\w])"
        )
        text = path_pattern.sub(lambda m: paths[m.group(1)], text)
    for old, new in FOLDERS.items():
        text = re.sub(rf"(?<![\w/.]){PACKAGE}/{re.escape(old)}(?![\w])", f"{PACKAGE}/{new}", text)
    return text


def rewrite_file(path: str, text: str, p: Plan) -> str:
    if path.endswith(".py"):
        text = rewrite_imports(text, path, p)
    text = rewrite_names(text, path, p)
    for old, new in LITERALS.get(path, []):
        text = text.replace(old, new)
    return text


def tracked_text_files() -> list[str]:
    files = git("ls-files", "-co", "--exclude-standard").splitlines()
    return sorted(
        f for f in files
        if f not in SKIP_FILES and Path(f).suffix in TEXT_SUFFIXES and (ROOT / f).is_file()
    )


def run(dry_run: bool) -> int:
    p = plan()
    for old, new in p.moves:
        print(f"move {old} -> {new}")
    for path in p.new_files:
        print(f"create {path}")
    if not dry_run:
        for old, new in p.moves:
            (ROOT / new).parent.mkdir(parents=True, exist_ok=True)
            git("mv", old, new)
        for path, text in p.new_files.items():
            (ROOT / path).write_text(text)
            git("add", path)
    moved = dict(p.moves)
    changed = 0
    for path in tracked_text_files():
        # In a dry run the files are still at their old paths: read there, report the new one.
        source = path
        logical = moved.get(path, path)
        try:
            text = (ROOT / source).read_text()
        except UnicodeDecodeError:
            continue
        new = rewrite_file(logical, text, p)
        if new != text:
            changed += 1
            print(f"rewrite {logical}")
            if not dry_run:
                (ROOT / source).write_text(new)
    if not dry_run:
        for command in AFTERWARDS:
            subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    print(f"{len(p.moves)} moves, {len(p.new_files)} new files, {changed} files rewritten"
          + (" (dry run: nothing changed)" if dry_run else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="print what it would do; change nothing")
    args = parser.parse_args(argv)
    try:
        return run(args.dry_run)
    except RelayerError as err:
        print(f"relayer: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
