"""What kind of file a path is: CI configuration, build manifest, test, docs, source by language.

Each file gets one primary category, in this order of precedence: binary,
CI configuration, build/dependency manifest, test, docs, source, other
configuration, other. A test written in Python is a test, not Python source:
what matters for CI risk is the role of the change.
"""

from __future__ import annotations

import functools
import posixpath

CATEGORIES = (
    "binary",
    "ci",
    "build",
    "test",
    "docs",
    "src_python",
    "src_c_cpp",
    "src_js",
    "src_jvm",
    "src_go",
    "src_rust",
    "src_ruby",
    "src_shell",
    "src_other",
    "config",
    "other",
)

_CI_FILES = {
    ".gitlab-ci.yml",
    "jenkinsfile",
    ".travis.yml",
    "azure-pipelines.yml",
    "appveyor.yml",
    ".appveyor.yml",
    ".drone.yml",
    "bitbucket-pipelines.yml",
    ".cirrus.yml",
    "codecov.yml",
    ".codecov.yml",
}
_CI_DIRS = (".github/workflows/", ".circleci/", ".buildkite/", ".azure-pipelines/", ".github/actions/", "ci/", ".ci/")

_BUILD_FILES = {
    "setup.py",
    "setup.cfg",
    "pyproject.toml",
    "pipfile",
    "pipfile.lock",
    "poetry.lock",
    "uv.lock",
    "pdm.lock",
    "tox.ini",
    "noxfile.py",
    "manifest.in",
    "environment.yml",
    "environment.yaml",
    "constraints.txt",
    "package.json",
    "package-lock.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "npm-shrinkwrap.json",
    "bun.lockb",
    "go.mod",
    "go.sum",
    "pom.xml",
    "build.gradle",
    "build.gradle.kts",
    "settings.gradle",
    "settings.gradle.kts",
    "gradle.properties",
    "build.sbt",
    "makefile",
    "gnumakefile",
    "cmakelists.txt",
    "meson.build",
    "meson_options.txt",
    "configure.ac",
    "configure.in",
    "makefile.am",
    "dockerfile",
    "docker-compose.yml",
    "docker-compose.yaml",
    "gemfile",
    "gemfile.lock",
    "rakefile",
    "cargo.toml",
    "cargo.lock",
    "composer.json",
    "composer.lock",
    "mix.exs",
    "mix.lock",
    "requirements.txt",
    "build.xml",
    "bazel",
    "build.bazel",
    "workspace",
    "sconstruct",
}
_BUILD_SUFFIXES = (".cmake", ".gemspec", ".mk", ".bzl", ".dockerfile")

_LANGUAGES = {
    "src_python": (".py", ".pyx", ".pxd", ".pxi", ".pyi"),
    "src_c_cpp": (".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx", ".cu", ".cuh", ".m", ".mm", ".inc", ".src"),
    "src_js": (".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs", ".vue", ".svelte", ".coffee"),
    "src_jvm": (".java", ".kt", ".kts", ".scala", ".groovy", ".clj", ".cljs"),
    "src_go": (".go",),
    "src_rust": (".rs",),
    "src_ruby": (".rb", ".rake", ".erb"),
    "src_shell": (".sh", ".bash", ".zsh", ".fish", ".ps1", ".bat", ".cmd"),
    "src_other": (
        ".php",
        ".cs",
        ".fs",
        ".swift",
        ".r",
        ".pl",
        ".pm",
        ".lua",
        ".hs",
        ".erl",
        ".ex",
        ".exs",
        ".dart",
        ".f",
        ".f90",
        ".f95",
        ".for",
        ".jl",
        ".sql",
        ".ml",
        ".nim",
        ".zig",
        ".d",
        ".v",
        ".asm",
        ".s",
    ),
}
_EXT_TO_LANG = {ext: lang for lang, exts in _LANGUAGES.items() for ext in exts}

_DOC_SUFFIXES = (".md", ".rst", ".txt", ".adoc", ".asciidoc", ".markdown", ".tex", ".ipynb")
_DOC_DIRS = ("doc/", "docs/", "documentation/", "man/")
_DOC_NAMES = {
    "readme",
    "changelog",
    "changes",
    "history",
    "license",
    "licence",
    "authors",
    "contributors",
    "news",
    "notice",
    "copying",
    "contributing",
    "code_of_conduct",
}
_TEST_DIRS = {
    "test",
    "tests",
    "testing",
    "spec",
    "specs",
    "__tests__",
    "t",
    "testsuite",
    "unittest",
    "unittests",
    "integration_tests",
    "e2e",
}
_CONFIG_SUFFIXES = (
    ".yml",
    ".yaml",
    ".toml",
    ".ini",
    ".cfg",
    ".json",
    ".xml",
    ".conf",
    ".properties",
    ".env",
    ".editorconfig",
)


def _is_test(lower: str, name: str, stem: str) -> bool:
    parts = lower.split("/")[:-1]
    if any(part in _TEST_DIRS for part in parts):
        return True
    return (
        stem.startswith("test_")
        or stem.endswith("_test")
        or stem.endswith("_tests")
        or stem.endswith("_spec")
        or stem.startswith("test")
        and stem[4:5] in ("", "_", "-")
        or name.endswith((".test.js", ".spec.js", ".test.ts", ".spec.ts"))
        or stem.endswith("test")
        and name.endswith((".java", ".kt", ".scala"))
        or name == "conftest.py"
    )


def categorize(path: str, binary: bool = False) -> str:
    return "binary" if binary else _category(path)


@functools.lru_cache(maxsize=1 << 16)
def _category(path: str) -> str:
    """Cached: backfill meets the same paths again in every commit that touches them."""
    lower = path.lower()
    name = posixpath.basename(lower)
    stem, ext = posixpath.splitext(name)
    if name in _CI_FILES or lower.startswith(_CI_DIRS):
        return "ci"
    if (
        name in _BUILD_FILES
        or name.endswith(_BUILD_SUFFIXES)
        or (name.startswith("requirements") and ext in (".txt", ".in"))
        or name.startswith("dockerfile")
    ):
        return "build"
    if _is_test(lower, name, stem):
        return "test"
    if (
        ext in _DOC_SUFFIXES
        or lower.startswith(_DOC_DIRS)
        or stem in _DOC_NAMES
        or "/docs/" in lower
        or "/doc/" in lower
    ):
        return "docs"
    lang = _EXT_TO_LANG.get(ext)
    if lang is not None:
        return lang
    if ext in _CONFIG_SUFFIXES or name.startswith("."):
        return "config"
    return "other"


LABELS = {
    "binary": "binary files",
    "ci": "CI configuration",
    "build": "build or dependency manifests",
    "test": "tests",
    "docs": "documentation",
    "src_python": "Python source",
    "src_c_cpp": "C/C++ source",
    "src_js": "JavaScript/TypeScript source",
    "src_jvm": "JVM source",
    "src_go": "Go source",
    "src_rust": "Rust source",
    "src_ruby": "Ruby source",
    "src_shell": "shell scripts",
    "src_other": "other source",
    "config": "other configuration",
    "other": "other files",
}
