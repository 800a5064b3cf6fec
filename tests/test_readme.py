"""The README and docs/ stand on their own, and the README's settings table tells the truth.

- Every markdown link to a file resolves to a file inside the repository that a clone
  has (not outside it, not a git-ignored file), and every anchor names a heading.
- Every default in the README's table of environment variables is the value
  ``hitl/settings.py`` gives when the variable is unset, and every variable the settings
  read is in the table.
"""

import importlib.util
import os
import re
import subprocess
from pathlib import Path
from types import ModuleType
from unittest import mock
from urllib.parse import unquote, urlsplit

import pytest
from django.core.exceptions import ImproperlyConfigured

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SETTINGS = ROOT / "hitl" / "settings.py"
SKIPPED_DIRS = {"node_modules", "staticfiles"}  # and every hidden directory (.git, .venv, ...)
EXTERNAL_SCHEMES = {"http", "https", "mailto"}


def markdown_files() -> list[Path]:
    files = []
    for directory, subdirectories, names in os.walk(ROOT):
        subdirectories[:] = [d for d in subdirectories if not d.startswith(".") and d not in SKIPPED_DIRS]
        files += [Path(directory) / name for name in names if name.endswith(".md")]
    return sorted(files)


def without_fences(text: str) -> str:
    return re.sub(r"^( {0,3})(`{3,}|~{3,}).*?^\1\2[`~]*[ \t]*$", "", text, flags=re.MULTILINE | re.DOTALL)


def without_code(text: str) -> str:
    """Markdown with fenced blocks and inline code spans blanked (they hold no links)."""
    return re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "``", without_fences(text), flags=re.DOTALL)


INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+[\"'(].*?[\"')])?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.MULTILINE)
HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*[\"']([^\"']*)[\"']", re.IGNORECASE)


def links(text: str) -> list[str]:
    text = without_code(text)
    return [target for pattern in (INLINE_LINK, REFERENCE_DEFINITION, HTML_LINK) for target in pattern.findall(text)]


def heading_anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of a markdown file (and explicit ids)."""
    text = without_fences(path.read_text())
    anchors: set[str] = set(re.findall(r"<a\s+(?:name|id)=[\"']([^\"']+)[\"']", text))
    seen: dict[str, int] = {}
    for heading in re.findall(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", text, flags=re.MULTILINE):
        heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def git_ignored(paths: list[Path], root: Path = ROOT) -> set[Path]:
    """The paths git ignores (a clone would not have them); none when git is unavailable."""
    if not paths:
        return set()
    try:
        result = subprocess.run(
            ["git", "check-ignore", "--no-index", *map(str, paths)],  # noqa: S607 (git from PATH)
            cwd=root,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return set()
    if result.returncode not in (0, 1):  # not a git checkout
        return set()
    return {(root / line).resolve() for line in result.stdout.splitlines()}


def link_problems(markdown: Path, root: Path = ROOT) -> list[str]:
    problems = []
    local_targets = []
    name = markdown.relative_to(root)
    for target in links(markdown.read_text()):
        parts = urlsplit(target)
        if parts.scheme:
            if parts.scheme.lower() not in EXTERNAL_SCHEMES:
                problems.append(f"{name}: {target}: only http(s) and mailto links may leave the repository")
            continue
        if parts.netloc:
            problems.append(f"{name}: {target}: a link to another host needs https://")
            continue
        path, fragment = unquote(parts.path), unquote(parts.fragment)
        if not path:
            if not fragment:
                problems.append(f"{name}: an empty link")
            elif fragment not in heading_anchors(markdown):
                problems.append(f"{name}: #{fragment} names no heading of {name}")
            continue
        if path.startswith("/"):
            problems.append(f"{name}: {target}: write links relative to the file, not from /")
            continue
        resolved = (markdown.parent / path).resolve()
        if not resolved.is_relative_to(root):
            problems.append(f"{name}: {target} points outside the repository")
            continue
        if not resolved.exists():
            problems.append(f"{name}: {target}: no such file in the repository")
            continue
        local_targets.append((target, resolved))
        if fragment and resolved.suffix == ".md" and fragment not in heading_anchors(resolved):
            problems.append(f"{name}: {target}: #{fragment} names no heading of {resolved.relative_to(root)}")
    ignored = git_ignored([resolved for _, resolved in local_targets], root)
    problems += [
        f"{name}: {target} is ignored by git: a clone does not have it"
        for target, resolved in local_targets
        if resolved in ignored
    ]
    return problems


def test_the_link_checker_finds_what_it_should(tmp_path):
    text = (
        '[a](docs/design.md) [b](<docs/policies.md> "title") ![c](bench/README.md#benchmarks)\n'
        "`[not](a-link.md)`\n```\n[nor](this.md)\n```\n[ref]: ../shared/design.md\n"
        '<a href="https://example.com">x</a> [self](#heading)\n'
    )
    assert links(text) == [
        "docs/design.md",
        "docs/policies.md",
        "bench/README.md#benchmarks",
        "#heading",
        "../shared/design.md",
        "https://example.com",
    ]
    assert heading_anchors(README) >= {"two-commands", "rest-api-v1", "running-on-postgresql-and-redis"}

    # A scratch repository inside a folder that has a "shared/design.md" beside it.
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "design.md").write_text("# Design\n")
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "README.md").write_text("# Project\n\n## Two commands\n")
    (root / "docs" / "design.md").write_text("# Design\n")
    (root / ".gitignore").write_text("*.sqlite3\n")
    (root / "db.sqlite3").touch()  # exists here, but a clone does not have it
    has_git = subprocess.run(["git", "init", "-q", str(root)], capture_output=True).returncode == 0  # noqa: S607
    bad = root / "docs" / "page.md"
    bad.write_text(
        "# Only heading\n[out](../../shared/design.md) [gone](missing.md) [anchor](design.md#no-such-heading)\n"
        "[root](/README.md) [self](#only-heading) [self-bad](#nope) [ok](../README.md#two-commands)\n"
        "[ignored](../db.sqlite3) [file](file:///etc/passwd) [fine](design.md)\n"
    )
    problems = link_problems(bad, root)
    joined = "\n".join(problems)
    assert "../../shared/design.md points outside the repository" in joined
    assert "missing.md: no such file" in joined
    assert "#no-such-heading names no heading" in joined
    assert "/README.md: write links relative" in joined
    assert "#nope names no heading" in joined
    assert "only-heading" not in joined and "two-commands" not in joined and "(design.md)" not in joined
    assert "file:///etc/passwd: only http(s)" in joined
    if has_git:
        assert "../db.sqlite3 is ignored by git" in joined
    assert len(problems) == (7 if has_git else 6), problems


@pytest.mark.parametrize("markdown", markdown_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_markdown_links_stay_inside_the_repository(markdown):
    problems = link_problems(markdown)
    assert not problems, "\n".join(problems)


def test_the_readme_and_docs_are_checked():
    checked = {path.relative_to(ROOT).as_posix() for path in markdown_files()}
    assert {"README.md", "docs/design.md", "docs/policies.md", "docs/reviews.md", "docs/judges.md"} <= checked


# The README's table of environment variables against hitl/settings.py.

ENVIRONMENTS = {
    # What each kind of deployment sets; every other variable is unset.
    "embedded": {},
    "production": {
        "DEBUG": "0",
        "SECRET_KEY": "x" * 50,
        "HITL_SECRET_KEYS": "kQ6fJgu2Zb4l9XDbI2HZmUGK3fmcp5WKp8jSSOQrUn8=",
        "HITL_AUDIT_SIGNING_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    },
    "postgres": {"DATABASE_URL": "postgres://hitl@db.invalid:5432/hitl"},  # parsed, never connected to
}


def settings_under(environment: dict[str, str]) -> ModuleType:
    """A fresh copy of hitl/settings.py executed with only ``environment`` set."""
    spec = importlib.util.spec_from_file_location("hitl_settings_under_test", SETTINGS)
    module = importlib.util.module_from_spec(spec)
    with mock.patch.dict(os.environ, environment, clear=True):
        spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def code():
    return {name: settings_under(environment) for name, environment in ENVIRONMENTS.items()}


def settings_table() -> list[tuple[list[str], str]]:
    """(variables, default) for each row of the README table headed variable | meaning | default."""
    rows, in_table = [], False
    for line in README.read_text().splitlines():
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|(?=(?:[^`]*`[^`]*`)*[^`]*$)", line.strip())[1:-1]]
        if cells == ["variable", "meaning", "default"]:
            in_table = True
        elif in_table and cells and set("".join(cells)) <= set("-: "):
            continue
        elif in_table and len(cells) == 3:
            rows.append((re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[0]), cells[2]))
        elif in_table:
            break
    return rows


def _db(module):
    return module.DATABASES["default"]


# Where the code keeps each variable's value when it is not a setting of the same name,
# and under which deployment it is read.
READ = {
    "CONN_MAX_AGE": ("postgres", lambda s: _db(s)["CONN_MAX_AGE"]),
    "DATABASE_PREPARE_THRESHOLD": ("postgres", lambda s: _db(s)["OPTIONS"]["prepare_threshold"]),
    "HITL_MAX_BODY_BYTES": ("embedded", lambda s: s.DATA_UPLOAD_MAX_MEMORY_SIZE),
    "LOG_LEVEL": ("embedded", lambda s: s.LOGGING["root"]["level"]),
    "SECURE_PROXY_SSL_HEADER": ("production", lambda s: hasattr(s, "SECURE_PROXY_SSL_HEADER")),
    "SECURE_SSL_REDIRECT": ("production", lambda s: s.SECURE_SSL_REDIRECT),
    "SECURE_HSTS_SECONDS": ("production", lambda s: s.SECURE_HSTS_SECONDS),
}

# Defaults the README states in words, each with the check that the code agrees. A new
# wording fails the test until it is added here with its check.
LOCALHOST_NAMES = {"localhost", "127.0.0.1", "[::1]", "testserver"}
IN_WORDS = {
    ("DATABASE_URL", "SQLite file `db.sqlite3`"): lambda c: (
        _db(c["embedded"])["ENGINE"] == "django.db.backends.sqlite3"
        and Path(_db(c["embedded"])["NAME"]) == ROOT / "db.sqlite3"
    ),
    ("CELERY_BROKER_URL", "none: tasks run in-process"): lambda c: (
        c["embedded"].CELERY_BROKER_URL == "" and c["embedded"].CELERY_TASK_ALWAYS_EAGER is True
    ),
    ("SECRET_KEY", "a generated dev key in `.dev-secret-key`"): lambda c: (
        (ROOT / ".dev-secret-key").read_text().strip() == c["embedded"].SECRET_KEY
    ),
    ("ALLOWED_HOSTS", "localhost names under DEBUG, none otherwise"): lambda c: (
        c["embedded"].DEBUG
        and set(c["embedded"].ALLOWED_HOSTS) <= LOCALHOST_NAMES
        and "localhost" in c["embedded"].ALLOWED_HOSTS
        and c["production"].ALLOWED_HOSTS == []
    ),
    ("HITL_SECRET_KEYS", "under DEBUG, one derived from `SECRET_KEY`; none otherwise"): lambda c: (
        len(c["embedded"].HITL_SECRET_KEYS) == 1
        and c["embedded"].HITL_SECRET_KEYS != settings_under({"SECRET_KEY": "y" * 50}).HITL_SECRET_KEYS
        and _refused_without_keys()
    ),
    ("HITL_EXPORT_DIR", "`var/exports` in the project directory (git-ignored)"): lambda c: (
        Path(c["embedded"].HITL_EXPORT_DIR) == ROOT / "var" / "exports"
        and "var/" in (ROOT / ".gitignore").read_text().splitlines()
    ),
    ("DATABASE_REPLICA_URL", "none: they read the primary"): lambda c: (
        "replica" not in c["embedded"].DATABASES and "replica" not in c["postgres"].DATABASES
    ),
    (
        "HITL_AUDIT_SIGNING_KEY",
        "under DEBUG, one derived from `SECRET_KEY` (with a warning)",
    ): lambda c: (
        c["embedded"].HITL_AUDIT_SIGNING_KEY_DERIVED
        and c["embedded"].HITL_AUDIT_SIGNING_KEY != settings_under({"SECRET_KEY": "y" * 50}).HITL_AUDIT_SIGNING_KEY
        and _refused_without_keys("HITL_AUDIT_SIGNING_KEY")
    ),
    ("CSRF_TRUSTED_ORIGINS", "none"): lambda c: c["embedded"].CSRF_TRUSTED_ORIGINS == [],
    ("HITL_JUDGE_FLAG_SAMPLE_RATE", "off"): lambda c: c["embedded"].HITL_JUDGE_FLAG_SAMPLE_RATE is None,
    ("REDIS_CACHE_URL", "per-process memory"): lambda c: (
        c["embedded"].CACHES["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    ),
}


def _refused_without_keys(variable: str = "HITL_SECRET_KEYS") -> bool:
    try:
        settings_under({**ENVIRONMENTS["production"], variable: ""})
    except ImproperlyConfigured:
        return True
    return False


def stated_value(text: str, actual):
    """The README's ``1``, ``0``, ``900``, ``32 MiB`` or ``INFO`` as the code would hold it."""
    text = text.strip().strip("`")
    if match := re.fullmatch(r"(\d+) MiB", text):
        return int(match[1]) * 1024 * 1024
    if isinstance(actual, bool):
        return {"1": True, "0": False}.get(text, text)
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d+", text):
        return float(text)
    return text


def table_defaults() -> list[tuple[str, str | None]]:
    """(variable, its default as the README states it), one per variable of the table;
    None when a row naming several variables does not give one default each."""
    defaults = []
    for variables, cell in settings_table():
        texts = [text.strip() for text in cell.split(",")] if len(variables) > 1 else [cell]
        defaults += (
            zip(variables, texts, strict=True) if len(texts) == len(variables) else [(v, None) for v in variables]
        )
    return defaults


def check_default(code: dict[str, ModuleType], variable: str, stated: str | None) -> None:
    if stated is None:
        pytest.fail(f"README: the row of {variable} names several variables; give one default each, comma-separated")
    if (variable, stated) in IN_WORDS:
        assert IN_WORDS[variable, stated](code), f"README: {variable} defaults to {stated!r}; the code disagrees"
        return
    if match := re.fullmatch(r"(.+?) under DEBUG, else (.+)", stated):  # development and production differ
        expected = {"embedded": match[1], "production": match[2]}
    else:
        expected = {READ.get(variable, ("embedded",))[0]: stated}
    read = READ.get(variable, (None, lambda s: getattr(s, variable)))[1]
    for environment, text in expected.items():
        try:
            actual = read(code[environment])
        except (AttributeError, KeyError):
            pytest.fail(
                f"README: {variable} defaults to {stated!r}, which this test cannot find in hitl/settings.py "
                "(say where in READ, or, for a default in words, add it to IN_WORDS)"
            )
        assert actual == stated_value(text, actual), (
            f"README: {variable} defaults to {text}; hitl/settings.py ({environment}): {actual!r}"
        )


@pytest.mark.parametrize(("variable", "stated"), table_defaults(), ids=lambda value: value)
def test_readme_default_is_what_the_code_uses(code, variable, stated):
    check_default(code, variable, stated)


def variables_the_settings_read() -> set[str]:
    source = SETTINGS.read_text()
    reads = r"""(?:env_(?:bool|int|list)\(|os\.environ\.get\(|os\.environ\[)\s*["']([A-Z][A-Z0-9_]*)["']"""
    return set(re.findall(reads, source))


def test_every_variable_the_settings_read_is_in_the_table():
    documented = {variable for variables, _ in settings_table() for variable in variables}
    assert documented, "README.md has no table headed | variable | meaning | default |"
    read = variables_the_settings_read()
    assert len(read) > 10  # the pattern still finds them
    assert read - documented == set(), "read by hitl/settings.py but missing from README's table"
    assert documented - read == set(), "in README's table but not read by hitl/settings.py"


def test_the_table_check_catches_a_drift(code, monkeypatch):
    monkeypatch.setattr(code["embedded"], "HITL_JUDGE_RECONCILE_SECONDS", 300)
    with pytest.raises(AssertionError, match="HITL_JUDGE_RECONCILE_SECONDS defaults to `360`"):
        check_default(code, "HITL_JUDGE_RECONCILE_SECONDS", "`360`")
    monkeypatch.setattr(code["production"], "HITL_WEBHOOK_ALLOW_PRIVATE", True)
    with pytest.raises(AssertionError, match=r"HITL_WEBHOOK_ALLOW_PRIVATE defaults to `0`.*\(production\)"):
        check_default(code, "HITL_WEBHOOK_ALLOW_PRIVATE", "`1` under DEBUG, else `0`")


# Defaults the prose quotes beside a variable's name, like "`HITL_LEASE_SECONDS` (15 minutes)".
QUOTED_DEFAULT = re.compile(r"`([A-Z][A-Z0-9_]*)` \((?:default:? )?(\d+)(?: (seconds|s|minutes|MiB))?[;,)]")
UNITS = {None: 1, "s": 1, "seconds": 1, "minutes": 60, "MiB": 1024 * 1024}


def quoted_defaults() -> list[tuple[str, str, int]]:
    """(file, variable, value) for each default quoted beside a variable of the README's table."""
    documented = {variable for variables, _ in settings_table() for variable in variables}
    found = []
    for markdown in markdown_files():
        for variable, number, unit in QUOTED_DEFAULT.findall(without_fences(markdown.read_text())):
            if variable in documented:
                found.append((markdown.relative_to(ROOT).as_posix(), variable, int(number) * UNITS[unit or None]))
    return found


def test_defaults_quoted_in_the_docs_are_what_the_code_uses(code):
    quoted = quoted_defaults()
    assert {("docs/judges.md", "HITL_JUDGE_RECONCILE_SECONDS"), ("docs/reviews.md", "HITL_LEASE_SECONDS")} <= {
        (name, variable) for name, variable, _ in quoted
    }
    wrong = []
    for name, variable, value in quoted:
        environment, read = READ.get(variable, ("embedded", lambda s, variable=variable: getattr(s, variable)))
        actual = read(code[environment])
        if actual != value:
            wrong.append(f"{name}: {variable} ({value}), but hitl/settings.py gives {actual!r}")
    assert not wrong, "\n".join(wrong)
