"""Parse stack traces of seven languages into normalised frames, and build a grouping fingerprint.

Every parser is line-based: lines are capped in length and matched only with anchored regexes whose
repeated parts cannot overlap, so any input (empty, binary, megabytes) parses in time linear in its
first 64 KB. Frames come out innermost first (where the error was raised), whatever order the
language prints them in; for chained exceptions the root cause's frames lead, because that is
where the failure started.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agent.domain import Frame

log = logging.getLogger(__name__)

MAX_INPUT_CHARS = 64 * 1024
"""Only this much of a trace is parsed: the frames that matter for grouping are at its start."""
MAX_LINE_CHARS = 2048
MAX_FRAMES = 512
"""Deep recursion prints thousands of identical frames; the fingerprint needs the first few."""


@dataclass(frozen=True)
class ParsedStack:
    """A stack trace reduced to what grouping needs."""

    language: str
    """"python" | "java" | "javascript" | "go" | "rust" | "dotnet" | "ruby" | "unknown"."""
    exception_type: str | None
    """The reported (outermost) exception type without its message, e.g. "java.lang.NullPointerException"."""
    frames: tuple[Frame, ...]
    """Innermost first; for chained exceptions the root cause's frames come first."""
    causes: tuple[str, ...] = ()
    """Types of chained causes, nearest first: the last one is the root cause."""


# --------------------------------------------------------------------------- paths

_SCHEME = re.compile(r"[A-Za-z][\w+.-]*://")
_DRIVE = re.compile(r"[A-Za-z]:/")
_VENDOR_MARKERS = (
    "node_modules/",
    "bower_components/",
    "site-packages/",
    "dist-packages/",
    "/gems/",
    "/pkg/mod/",
    "/vendor/",
    "cargo/registry/src/",
    "cargo/git/checkouts/",
)
_STDLIB_DIR = re.compile(r"lib(?:64)?/(?:python\d[\d.]*t?|ruby)/")
_VERSION_SUFFIX = re.compile(r"-v?\d+\.\d|-[0-9a-f]{7,40}$|@v?\d")
_VERSION_ONLY = re.compile(r"v?\d++(?:\.\d++)++[\w.+-]*+|\d{8,}+")
_BUNDLE_HASH = re.compile(r"[.-][0-9a-f]{8,}(?=\.\w+$)")
_DEPLOY_SEGMENTS = frozenset({  # leading folders that say where code is deployed, not what it is
    "app", "apps", "application", "srv", "opt", "code", "src", "usr", "local", "var", "www", "workspace",
    "workspaces", "workdir", "work", "deploy", "deployments", "releases", "release", "current", "build", "builds",
    "tmp", "mnt", "data", "root", "inetpub", "wwwroot", "projects", "repos", ".", "~",
})  # fmt: skip
_USER_HOMES = frozenset({"home", "Users"})


@functools.lru_cache(maxsize=4096)
def _normalise_path(raw: str) -> tuple[str, bool]:
    """Reduce a file path or URL to the part that is the same wherever the code is deployed.

    Returns:
        The path from the package root (vendor and stdlib files) or from the project root (the
        leading deployment folders such as /srv/app, /home/<user>, /usr/src/app dropped), with
        version numbers and bundle hashes removed; and True when the file is vendored or stdlib.
    """
    path = raw.strip().replace("\\", "/").split("?", 1)[0]
    if path.startswith("file://"):
        path = path[7:]
    else:
        scheme = _SCHEME.match(path)
        if scheme:  # drop scheme and host: https://cdn.example.com/static/app.js, webpack:///./src/x.js
            rest = path[scheme.end() :]
            path = rest.partition("/")[2]
    if _DRIVE.match(path):
        path = path[3:]
    vendor = False
    cut = -1
    for marker in _VENDOR_MARKERS:
        at = path.rfind(marker)
        if at >= 0 and at + len(marker) > cut:
            cut = at + len(marker)
            vendor = True
            if marker.startswith("cargo/"):  # the next segment is the registry index, not the crate
                nxt = path.find("/", cut)
                cut = nxt + 1 if nxt >= 0 else cut
    stdlib = _STDLIB_DIR.search(path)
    if stdlib and stdlib.end() > cut:
        cut, vendor = stdlib.end(), True
    if cut >= 0:
        path = path[cut:]
    segments = [s for s in path.split("/") if s]
    if not vendor:
        while len(segments) > 1:
            head = segments[0]
            if head in _USER_HOMES and len(segments) > 2:
                segments = segments[2:]
            elif head in _DEPLOY_SEGMENTS or _VERSION_ONLY.fullmatch(head):
                segments = segments[1:]
            else:
                break
    cleaned: list[str] = []
    for i, seg in enumerate(segments[:64]):
        if i < len(segments) - 1:
            if _VERSION_ONLY.fullmatch(seg) or seg.endswith(".egg"):  # site-packages/foo-1.2-py3.11.egg/foo/
                continue
            version = _VERSION_SUFFIX.search(seg, 1)  # rack-2.2.3, lodash@4.17.21, bar@v1.2.0, rails-3f2a1b9
            seg = seg[: version.start()] if version else seg
        else:
            seg = _BUNDLE_HASH.sub("", seg)
        cleaned.append(seg)
    return "/".join(cleaned) or raw.strip()[:200], vendor


def _strip_line_col(loc: str) -> str:
    """`/app/x.js:10:5` -> `/app/x.js` (at most two trailing numeric parts)."""
    for _ in range(2):
        head, sep, tail = loc.rpartition(":")
        if sep and tail.isdigit():
            loc = head
        else:
            break
    return loc


# --------------------------------------------------------------------------- language detection

_JAVA_FRAME = re.compile(r"\s*at\s+([^\s()]+)\(([^()]*)\)")
_JAVA_SOURCE = re.compile(
    r"(?:[\w$.-]+\.(?:java|kt|kts|scala|groovy|clj|cljc|jsp|aj)|Unknown Source|SourceFile|Unknown)(?::\d+)?"
    r"|Native Method|<generated>"
)

_PY_FRAME = re.compile(r'\s*File "([^"]*)", line (\d+)(?:, in (.+))?')
_RUBY_FRAME = re.compile(
    r"\s*(?:\d+: +)?(?:from +)?(<internal:[^>]*>|(?:[A-Za-z]:)?[^\s:][^:]*?):(\d+):in +[`']([^'`]*)['`]"
)
_GO_GOROUTINE = re.compile(r"goroutine \d+ \[[^\]]*\]:")
_GO_FILE = re.compile(r"\s+(\S.*?\.go|\?\?\?):\d+(?: \+0x[0-9a-fA-F]+)?\s*$")
_RUST_PANIC = re.compile(r"thread '[^']*' panicked at ")
_RUST_SYMBOL = re.compile(r"\s*\d+: +(?:0x[0-9a-fA-F]+ +- +)?(\S.*)")
_GECKO_FRAME = re.compile(r"\s*([^\s@]*)@(\S+?:\d+(?::\d+)?)\s*$")


def _classify_at(stripped: str) -> str | None:
    """Tell which language prints a frame line starting with "at "."""
    rest = stripped[3:].strip()
    if rest.endswith(")") and "(" in rest:
        idx = rest.find("(")
        if idx > 0 and rest[idx - 1] == " ":
            return "javascript"
        if _JAVA_SOURCE.fullmatch(rest[idx + 1 : -1]):
            return "java"
        return "dotnet"
    head, sep, line_no = rest.rpartition(":line ")
    if sep and line_no.isdigit() and " in " in head:
        return "dotnet"
    if _strip_line_col(rest) != rest:
        return "rust" if _strip_line_col(rest).endswith(".rs") else "javascript"
    return None


def _detect(lines: Sequence[str]) -> str:
    scores = dict.fromkeys(("python", "java", "javascript", "go", "rust", "dotnet", "ruby"), 0)
    for line in lines:
        s = line.strip()
        if not s:
            continue
        lang: str | None = None
        weight = 1
        if s.startswith("at "):
            lang = _classify_at(s)
        elif s.startswith('File "') and _PY_FRAME.match(s):
            lang, weight = "python", 2
        elif _RUBY_FRAME.match(s):
            lang = "ruby"
        elif _GO_GOROUTINE.match(s) or s.startswith("panic: ") or s.startswith("fatal error: "):
            lang, weight = "go", 3
        elif _GO_FILE.match(line):
            lang = "go"
        elif _RUST_PANIC.search(s[:200]):
            lang, weight = "rust", 3
        elif _RUST_SYMBOL.match(s) and ("::" in s or s.endswith("rust_begin_unwind")):
            lang = "rust"
        elif _GECKO_FRAME.match(s):
            lang = "javascript"
        elif "Traceback (most recent call last)" in s:
            lang = "python"
        if lang:
            scores[lang] += weight
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] > 0 else "unknown"


# --------------------------------------------------------------------------- shared helpers

# Possessive quantifiers: a dotted (or Ruby `::`) name is matched once, never re-split on failure.
_TYPE_LIKE = re.compile(r"(?:[A-Za-z_$][\w$]*+(?:\.|::))*+([A-Z][\w$]*+)")
_GENERIC_TYPE = re.compile(r"\s*+(?:Uncaught\s+)?((?:[A-Za-z_$][\w$]*+(?:\.|::))*+[A-Za-z_$][\w$]*+)(?::\s|:$|\s*$)")


def _plausible_type(name: str) -> bool:
    """A dotted name, or one that ends like an exception class (Error, Exception, ...)."""
    m = _TYPE_LIKE.fullmatch(name)
    if not m:
        return False
    last = m.group(1)
    return "." in name or "::" in name or last.endswith(("Error", "Exception", "Failure", "Throwable", "Interrupt"))


def _starts_with_type(line: str) -> bool:
    m = _GENERIC_TYPE.match(line)
    return bool(m and _plausible_type(m.group(1)))


def _guess_type(lines: Sequence[str]) -> str | None:
    """Exception type from a bare "Type: message" line, for text that holds no frames."""
    for line in lines[:20]:
        m = _GENERIC_TYPE.match(line)
        if m and _plausible_type(m.group(1)):
            return m.group(1)
    return None


@dataclass
class _Block:
    """One exception of a chain while parsing: its type and frames in print order."""

    type: str | None
    frames: list[Frame] = field(default_factory=list)
    skip: bool = False
    more: int = 0


def _chain_result(language: str, blocks: list[_Block], *, innermost_first: bool) -> ParsedStack:
    """Top block = reported exception, later blocks = its causes, each with a complete stack."""
    kept = [b for b in blocks if not b.skip]
    if not kept:
        return ParsedStack(language, None, ())
    root = next((b for b in reversed(kept) if b.frames), kept[-1])  # input cut after a "Caused by:" line
    frames = root.frames if innermost_first else root.frames[::-1]
    causes = tuple(b.type for b in kept[1:] if b.type)
    return ParsedStack(language, kept[0].type, tuple(frames[:MAX_FRAMES]), causes)


# --------------------------------------------------------------------------- python

_PY_GROUP_PREFIX = re.compile(r"\s*[|+] ")
_PY_VENDOR = ("<frozen ", "importlib/_bootstrap")


def _python_frame(path: str, function: str | None) -> Frame:
    module, vendor = _normalise_path(path) if not path.startswith("<") else (path, path.startswith(_PY_VENDOR))
    vendor = vendor or any(v in path for v in _PY_VENDOR)
    return Frame(module=module, function=(function or "?").strip(), in_app=not vendor)


def _parse_python(lines: Sequence[str]) -> ParsedStack:
    segments: list[_Block] = []
    cur: _Block | None = None
    frame_indent = 1
    for raw in lines:
        if "+-+----" in raw or "+---------------- " in raw:
            break  # sub-exceptions of an ExceptionGroup: the group's own traceback is the one reported
        prefix = _PY_GROUP_PREFIX.match(raw)
        line = raw[prefix.end() :] if prefix else raw
        at = line.find("Traceback (most recent call last)")
        if at >= 0:
            cur = _Block(None)
            segments.append(cur)
            frame_indent = at + 1
            continue
        m = _PY_FRAME.match(line)
        if m:
            if cur is None or cur.type is not None:
                cur = _Block(None)
                segments.append(cur)
            frame_indent = len(line) - len(line.lstrip())
            if len(cur.frames) < MAX_FRAMES:
                cur.frames.append(_python_frame(m.group(1), m.group(3)))
            continue
        if cur is not None and cur.type is None and line.strip():
            # Source lines sit deeper than the "File" lines; the exception line sits shallower.
            indent = len(line) - len(line.lstrip())
            exc = _GENERIC_TYPE.match(line) if indent < frame_indent else None
            if exc:
                cur.type = exc.group(1)
    if not segments:
        return ParsedStack("python", _guess_type(lines), ())
    # Printed root cause first, reported exception last; each traceback is outermost first.
    # The logical stack, innermost first: the root cause's frames, then each wrapper's.
    frames: list[Frame] = []
    for seg in segments:
        frames.extend(reversed(seg.frames))
    types = [s.type for s in segments if s.type]
    exc_type = segments[-1].type
    causes = tuple(reversed(types[:-1])) if exc_type else tuple(reversed(types))
    return ParsedStack("python", exc_type, tuple(frames[:MAX_FRAMES]), causes)


# --------------------------------------------------------------------------- java (and kotlin, scala)

_JAVA_HEADER = re.compile(
    r"(\s*)(?:Exception in thread \"[^\"]*\"\s+)?(?:(Caused by|Suppressed|Wrapped by):\s+)?"
    r"([A-Za-z_$][\w$]*+(?:\.[A-Za-z_$][\w$]*+)*+)(?::\s|:$|\s*$)"
)
_JAVA_MORE = re.compile(r"\s*\.\.\. (\d+) (?:more|common frames omitted)")
_JAVA_GENERATED: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\$\$Lambda(?:\$\d+)?(?:/(?:0x)?[0-9a-fA-F]+)?"), "$$Lambda"),
    (re.compile(r"(Generated\w*?Accessor)\d+"), r"\1"),
    (re.compile(r"\$Proxy\d+"), "$Proxy"),
    (re.compile(r"\bjdk\.proxy\d+"), "jdk.proxy"),
    (re.compile(r"(\$\$\w*?CGLIB\$\$)[0-9a-fA-F]+"), r"\1"),
    (re.compile(r"\$(MockitoMock|ByteBuddy|HibernateProxy)\$\w+"), r"$\1"),
    (re.compile(r"_\$\$_(?:jvst|javassist_)\w*"), "_$$_javassist"),
    (re.compile(r"\blambda\$([\w$]*?)\$\d+$"), r"lambda$\1"),
    (re.compile(r"\baccess\$\d+$"), "access$"),
)
_JAVA_VENDOR = (
    "java.", "javax.", "jakarta.", "jdk.", "sun.", "com.sun.", "kotlin.", "kotlinx.", "scala.", "groovy.",
    "org.codehaus.groovy.", "clojure.", "org.junit.", "junit.", "org.testng.", "org.hamcrest.", "org.assertj.",
    "org.opentest4j.", "org.apache.maven.", "org.gradle.", "worker.org.gradle.", "org.apache.tools.ant.",
    "com.intellij.rt.", "org.springframework.", "org.hibernate.", "io.netty.", "reactor.", "org.eclipse.jetty.",
    "org.apache.catalina.", "org.apache.coyote.", "org.apache.tomcat.", "net.bytebuddy.", "android.", "androidx.",
    "dalvik.", "com.android.internal.",
)  # fmt: skip


@functools.lru_cache(maxsize=4096)  # the same framework frames recur in every trace
def _java_frame(qualified: str) -> Frame:
    name = qualified
    if "$" in name or "Generated" in name or "jdk.proxy" in name:
        for pattern, repl in _JAVA_GENERATED:
            name = pattern.sub(repl, name)
    name = name.rpartition("/")[2]  # java.base/java.lang.Integer, app//com.foo.Bar: module or loader name
    cls, _, method = name.rpartition(".")
    return Frame(module=cls or name, function=method, in_app=not name.startswith(_JAVA_VENDOR))


def _parse_java(lines: Sequence[str]) -> ParsedStack:
    blocks: list[_Block] = []
    wrappers: list[str] = []
    top_indent = 0
    for line in lines:
        m = _JAVA_FRAME.match(line)
        if m and _JAVA_SOURCE.fullmatch(m.group(2)):
            if not blocks:
                blocks.append(_Block(None))
            cur = blocks[-1]
            if not cur.skip and len(cur.frames) < MAX_FRAMES:
                cur.frames.append(_java_frame(m.group(1)))
            continue
        more = _JAVA_MORE.match(line)
        if more:
            if blocks:
                blocks[-1].more = int(more.group(1)[:6])
            continue
        h = _JAVA_HEADER.match(line)
        if not h or not _plausible_type(h.group(3)):
            continue
        indent, kind, exc = len(h.group(1)), h.group(2), h.group(3)
        if not blocks:
            blocks.append(_Block(exc, skip=kind == "Suppressed"))
            top_indent = indent
        elif kind == "Wrapped by" and indent <= top_indent:
            # Logback's %rEx prints the root cause first, then each wrapper with only its extra frames.
            wrappers.append(exc)
            blocks.append(_Block(exc, skip=True))
        elif kind in ("Caused by", "Suppressed"):
            # Suppressed exceptions and their causes are printed one tab deeper than the main chain.
            blocks.append(_Block(exc, skip=kind == "Suppressed" or indent > top_indent))
        elif blocks[0].frames and indent <= top_indent and not kind:
            break  # a second, unrelated trace
    # "... N more": a cause shares its outermost N frames with the exception that wraps it.
    enclosing: list[Frame] = []
    for b in blocks:
        if b.skip:
            continue
        if b.more and enclosing:
            b.frames.extend(enclosing[-b.more :])
        enclosing = b.frames
    stack = _chain_result("java", blocks, innermost_first=True)
    if wrappers and stack.exception_type:
        root = stack.exception_type
        stack = ParsedStack("java", wrappers[-1], stack.frames, (*reversed(wrappers[:-1]), root))
    return stack


# --------------------------------------------------------------------------- javascript (V8 and Gecko/WebKit)

_JS_CAUSE = re.compile(r"\s*(?:\[cause\]:|Caused by:)\s*\{?\s*")
_JS_CODE = re.compile(r"\s*\[[A-Z0-9_]+\]")
_JS_ALIAS = re.compile(r" \[as [^\]]*\]")


def _js_frame(function: str, loc: str) -> Frame:
    fn = function.strip()
    for prefix in ("async ", "new "):
        fn = fn.removeprefix(prefix)
    fn = _JS_ALIAS.sub("", fn) or "<anonymous>"
    loc = loc.strip()
    if loc.startswith("eval at ") and "(" in loc:  # eval at fn (file:1:2), <anonymous>:1:3
        loc = loc[loc.find("(") + 1 :].partition(")")[0]
    loc = _strip_line_col(loc)
    if loc.startswith(("node:", "internal/", "index ")) or loc in ("native", "<anonymous>"):
        return Frame(module=loc, function=fn, in_app=False)
    module, vendor = _normalise_path(loc)
    return Frame(module=module, function=fn, in_app=not vendor)


def _js_header_type(line: str) -> str | None:
    m = _GENERIC_TYPE.match(line.replace(" (in promise)", ""))
    if m is None:
        code = _JS_CODE.search(line[:200])
        if code:  # Error [ERR_X]: msg
            m = _GENERIC_TYPE.match(line[: code.start()] + line[code.end() :])
    return m.group(1) if m and _plausible_type(m.group(1)) else None


def _js_parse_frame(stripped: str) -> Frame | None:
    if stripped.startswith("at "):
        rest = stripped[3:].strip()
        if rest.endswith(")") and " (" in rest:
            fn, _, loc = rest.partition(" (")
            return _js_frame(fn, loc[:-1])
        if _strip_line_col(rest) != rest:
            return _js_frame("<anonymous>", rest)
        return None
    gecko = _GECKO_FRAME.match(stripped)  # Firefox / Safari: fn@url:line:col
    return _js_frame(gecko.group(1).partition("/<")[0], gecko.group(2)) if gecko else None


def _parse_javascript(lines: Sequence[str]) -> ParsedStack:
    blocks: list[_Block] = []
    header: str | None = None  # the first "TypeError: msg" line before the frames
    for line in lines:
        s = line.strip()
        frame = _js_parse_frame(s)
        if frame is not None:
            if not blocks:
                blocks.append(_Block(header))
            if len(blocks[-1].frames) < MAX_FRAMES:
                blocks[-1].frames.append(frame)
            continue
        if not blocks:
            header = header or _js_header_type(s)
            continue
        cause = _JS_CAUSE.match(line)
        if cause:  # Node prints `{ [cause]: Error: inner` and the cause's own full stack
            blocks.append(_Block(_js_header_type(line[cause.end() :])))
        elif s.startswith("[errors]:") or (blocks[0].frames and not line[:1].isspace() and _js_header_type(s)):
            break  # AggregateError members, or a second unrelated error
    if not blocks:
        return ParsedStack("javascript", header or _guess_type(lines), ())
    return _chain_result("javascript", blocks, innermost_first=True)


# --------------------------------------------------------------------------- go

_GO_STDLIB = frozenset({  # top-level packages of Go's standard library
    "archive", "bufio", "builtin", "bytes", "cmp", "compress", "container", "context", "crypto", "database",
    "debug", "embed", "encoding", "errors", "expvar", "flag", "fmt", "go", "hash", "html", "image", "index",
    "internal", "io", "iter", "log", "maps", "math", "mime", "net", "os", "path", "plugin", "reflect", "regexp",
    "runtime", "slices", "sort", "strconv", "strings", "structs", "sync", "syscall", "testing", "text", "time",
    "unicode", "unique", "unsafe", "weak",
})  # fmt: skip
_GO_PANIC_TYPE = re.compile(r"\(([^()\s]+)\)")


def _split_go_function(line: str) -> tuple[str, str]:
    """`github.com/a/b/db.(*Conn).Query(0xc0, {0x0})` -> ("github.com/a/b/db", "(*Conn).Query")."""
    name = line.strip()
    if name.endswith(")"):
        depth = 0
        for i in range(len(name) - 1, -1, -1):  # the argument list is the last balanced (...) group
            depth += {")": 1, "(": -1}.get(name[i], 0)
            if depth == 0:
                name = name[:i]
                break
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    if dot < 0:
        return "", name  # runtime built-ins print without a package: panic(...), goexit()
    return name[:dot], name[dot + 1 :]


def _go_type(header: str) -> str:
    if header.startswith("fatal error:"):
        return "fatal error"
    value = header.removeprefix("panic:").strip()
    if value.startswith("runtime error:"):
        return "runtime error"
    m = _GO_PANIC_TYPE.match(value)  # panic(T{...}) prints "(main.T) {...}"
    return m.group(1) if m else "panic"


def _parse_go(lines: Sequence[str]) -> ParsedStack:
    exc: str | None = None
    frames: list[Frame] = []
    in_goroutine = False
    function: tuple[str, str] | None = None
    for line in lines:
        s = line.strip()
        if exc is None and (s.startswith("panic: ") or s.startswith("fatal error: ")):
            exc = _go_type(s)
            continue
        if _GO_GOROUTINE.match(s):
            if in_goroutine or frames:
                break  # only the first goroutine is the one that failed
            in_goroutine = True
            continue
        if not in_goroutine:
            continue
        if not s:
            if frames:
                break
            continue
        f = _GO_FILE.match(line)
        if f and function is not None:
            pkg, fn = function
            root = pkg.split("/", 1)[0]
            vendor = "/pkg/mod/" in f.group(1) or "/vendor/" in f.group(1)
            stdlib = not pkg or ("." not in root and root in _GO_STDLIB)
            if len(frames) < MAX_FRAMES:
                frames.append(Frame(module=pkg, function=fn, in_app=not (vendor or stdlib)))
            function = None
        elif s.startswith("created by ") or s.startswith("..."):
            function = None
        elif not line[:1].isspace():
            function = _split_go_function(s)
    return ParsedStack("go", exc, tuple(frames))


# --------------------------------------------------------------------------- rust

_RUST_HASH = re.compile(r"::h[0-9a-f]{16}$")
_RUST_VENDOR_CRATES = frozenset({"std", "core", "alloc", "panic_unwind", "panic_abort", "backtrace", "test"})
_RUST_VENDOR_SYMBOLS = frozenset(
    {"rust_begin_unwind", "main", "_start", "__libc_start_main", "__libc_start_call_main", "start_thread", "clone",
     "clone3", "BaseThreadInitThunk", "RtlUserThreadStart", "__scrt_common_main_seh", "<unknown>"}
)  # fmt: skip


def _split_rust_symbol(symbol: str) -> tuple[str, str]:
    """Split at the last `::` outside `<...>`: `<a::B as c::D>::fmt` -> ("<a::B as c::D>", "fmt")."""
    depth, cut = 0, -1
    for i, ch in enumerate(symbol):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == ":" and depth == 0 and symbol.startswith("::", i):
            cut = i
    return (symbol[:cut], symbol[cut + 2 :]) if cut > 0 else ("", symbol)


def _rust_frame(symbol: str, file: str | None) -> Frame:
    symbol = _RUST_HASH.sub("", symbol.strip())
    module, function = _split_rust_symbol(symbol)
    crate = symbol.lstrip("<&* ").partition("::")[0]
    vendor = (
        crate in _RUST_VENDOR_CRATES
        or symbol in _RUST_VENDOR_SYMBOLS
        or ("::" not in symbol and symbol.startswith("_"))  # __rust_*, _start, __libc_start_main_impl
        or (file is not None and ("/rustc/" in file or "cargo/registry/" in file or "cargo/git/" in file))
    )
    return Frame(module=module, function=function, in_app=not vendor)


def _parse_rust(lines: Sequence[str]) -> ParsedStack:
    exc: str | None = None
    symbols: list[list[str | None]] = []
    in_trace = False
    for line in lines:
        s = line.strip()
        if exc is None and _RUST_PANIC.search(s[:200]):
            exc = "panic"
        elif exc is None and s.startswith("Error: "):
            exc = "Error"  # fn main() -> Result<..> (anyhow, eyre) prints the error and its chain
        if s.lower() == "stack backtrace:":
            if symbols:
                break
            in_trace = True
            continue
        if not in_trace:
            continue
        sym = _RUST_SYMBOL.match(line)
        if sym:
            if len(symbols) < MAX_FRAMES:
                symbols.append([sym.group(1), None])
        elif s.startswith("at ") and symbols and symbols[-1][1] is None:
            symbols[-1][1] = _strip_line_col(s[3:].strip())
        elif s and not s.startswith("note:") and not s.startswith("at "):
            in_trace = False
    frames = tuple(_rust_frame(sym or "", file) for sym, file in symbols)
    return ParsedStack("rust", exc, frames)


# --------------------------------------------------------------------------- .NET

_DOTNET_FRAME = re.compile(r"\s*at ([^\s(]+)\(")
_DOTNET_GENERIC_ARGS = re.compile(r"\[[^\[\]]*\]")
_DOTNET_NAMES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\.<([\w]+)>d__\d+\.MoveNext$"), r".\1"),  # async state machine -> the async method
    (re.compile(r"<>c__DisplayClass\d+_\d+"), "<>c__DisplayClass"),
    (re.compile(r"(>b__)\d+(?:_\d+)?"), r"\1"),
    (re.compile(r"(>g__\w+)\|\d+_\d+"), r"\1"),
    (re.compile(r"^lambda_method\d+$"), "lambda_method"),
)
_DOTNET_VENDOR = ("System.", "Microsoft.", "Windows.", "Mono.", "NUnit.", "Xunit.", "xunit.", "Castle.", "lambda_")


def _dotnet_frame(qualified: str) -> Frame:
    name = _DOTNET_GENERIC_ARGS.sub("", qualified)  # Foo.Bar[T](T x): the runtime's type arguments
    for pattern, repl in _DOTNET_NAMES:
        name = pattern.sub(repl, name)
    cls, _, method = name.rpartition(".")
    if cls.endswith(".") and method in ("ctor", "cctor"):  # Foo..ctor
        cls, method = cls.rstrip("."), "." + method
    return Frame(module=cls or name, function=method, in_app=not name.startswith(_DOTNET_VENDOR))


def _parse_dotnet(lines: Sequence[str]) -> ParsedStack:
    header: list[str] = []
    frames: list[Frame] = []
    for line in lines:
        m = _DOTNET_FRAME.match(line)
        if m:
            if len(frames) < MAX_FRAMES:
                frames.append(_dotnet_frame(m.group(1)))
            continue
        s = line.strip()
        if not frames and s and len(header) < 50:
            header.append(s.removeprefix("Unhandled exception.").removeprefix("Unhandled Exception:"))
    # Log lines may come first (ASP.NET: "fail: Microsoft...[1]"): the chain starts at the first type.
    start = next((i for i, h in enumerate(header) if _starts_with_type(h)), len(header))
    # "Outer: msg ---> Inner: msg ---> Root: msg": the root's frames are printed first, then
    # "--- End of inner exception stack trace ---" and the wrappers' frames, already innermost first.
    parts = " ".join(header[start:]).split("--->")
    types = [m.group(1) for part in parts if (m := _GENERIC_TYPE.match(part)) and _plausible_type(m.group(1))]
    return ParsedStack("dotnet", types[0] if types else None, tuple(frames), tuple(types[1:]))


# --------------------------------------------------------------------------- ruby

_RUBY_TYPE = re.compile(r"\(([A-Z][\w:]*)\)\s*$")
_RUBY_RAILS_HEADER = re.compile(r"\s*([A-Z][\w:]*) \(")
_RUBY_BLOCK_LEVELS = re.compile(r"^block \(\d+ levels\) in ")
_RUBY_GEM_PREFIX = re.compile(r"([\w.-]+) \([\w.]+\) (\S+)")


def _ruby_frame(path: str, label: str) -> Frame:
    label = _RUBY_BLOCK_LEVELS.sub("block in ", label)
    if path.startswith("<internal:"):
        return Frame(module=path, function=label, in_app=False)
    gem = _RUBY_GEM_PREFIX.match(path)
    if gem:  # Rails backtrace cleaner: "actionpack (7.0.4) lib/action_controller/metal.rb"
        return Frame(module=f"{gem.group(1)}/{gem.group(2)}", function=label, in_app=False)
    module, vendor = _normalise_path(path)
    return Frame(module=module, function=label, in_app=not (vendor or "/rubygems/" in path))


def _ruby_type(tail: str) -> str | None:
    m = _RUBY_TYPE.search(tail[-200:])
    return m.group(1) if m else None


def _parse_ruby(lines: Sequence[str]) -> ParsedStack:
    blocks: list[_Block] = []
    reversed_order = False
    rails_type: str | None = None  # Rails logs: "NoMethodError (undefined method ...):" then bare frames
    for line in lines:
        m = _RUBY_FRAME.match(line)
        if m is None:
            if not blocks and rails_type is None:
                h = _RUBY_RAILS_HEADER.match(line)
                rails_type = h.group(1) if h else None
            elif blocks and blocks[-1].type is None and len(blocks[-1].frames) == 1:
                blocks[-1].type = _ruby_type(line)  # a multi-line message ends with "(Type)"
            continue
        s = line.lstrip()
        numbered = s[:1].isdigit()
        reversed_order = reversed_order or numbered
        tail = line[m.end() :]
        # "path:10:in `x': message (Type)" opens an exception (the reported one, then each cause);
        # "from path:5:in `y'" continues it.
        headed = tail.startswith(":") and not (s.startswith("from ") or numbered)
        if not blocks or (headed and not reversed_order):
            blocks.append(_Block(_ruby_type(tail) if headed else None))
        elif headed:  # Ruby 2.5-2.7 on a terminal prints innermost last, and names the type there
            blocks[-1].type = _ruby_type(tail)
        if len(blocks[-1].frames) < MAX_FRAMES:
            blocks[-1].frames.append(_ruby_frame(m.group(1), m.group(3)))
    if blocks and blocks[0].type is None:
        blocks[0].type = rails_type
    if reversed_order:
        return _chain_result("ruby", blocks[:1], innermost_first=False)
    return _chain_result("ruby", blocks, innermost_first=True)


# --------------------------------------------------------------------------- entry points

_PARSERS: dict[str, Callable[[Sequence[str]], ParsedStack]] = {
    "python": _parse_python,
    "java": _parse_java,
    "javascript": _parse_javascript,
    "go": _parse_go,
    "rust": _parse_rust,
    "dotnet": _parse_dotnet,
    "ruby": _parse_ruby,
}


def parse_stack(text: str) -> ParsedStack:
    """Parse a stack trace of any supported language; never raises.

    Args:
        text: The trace as printed, possibly with log lines around it. Only the first 64 KB is read.

    Returns:
        The language, exception type, causes and normalised frames (innermost first); language
        "unknown" with no frames when nothing in the text looks like a stack trace.
    """
    if not isinstance(text, str) or not text:
        return ParsedStack("unknown", None, ())
    lines = [line[:MAX_LINE_CHARS] for line in text[:MAX_INPUT_CHARS].replace("\x00", "").splitlines()]
    try:
        language = _detect(lines)
        if language == "unknown":
            return ParsedStack("unknown", _guess_type(lines), ())
        return _PARSERS[language](lines)
    except Exception:  # a parser bug must not drop an error event at ingest: degrade to no frames
        log.warning("stack trace parser failed; grouping falls back to the message", exc_info=True)
        return ParsedStack("unknown", None, ())


_QUALIFIED_LANGUAGES = frozenset({"java", "dotnet", "go"})


def _frame_key(frame: Frame, language: str) -> str:
    if language == "rust":
        return f"{frame.module}::{frame.function}" if frame.module else frame.function
    sep = "." if language in _QUALIFIED_LANGUAGES else ":"
    return f"{frame.module}{sep}{frame.function}"


def _frame_label(frame: Frame, language: str) -> str:
    """Short form for people: `Bar.baz`, `views.py:get`, `db.(*Conn).Query`, `config::load`."""
    if language in _QUALIFIED_LANGUAGES:
        return f"{frame.module.rpartition('/')[2].rpartition('.')[2]}.{frame.function}"
    if language == "rust":
        owner = frame.module if frame.module.endswith(">") else frame.module.rpartition("::")[2]
        return f"{owner}::{frame.function}" if owner else frame.function
    return f"{frame.module.rpartition('/')[2]}:{frame.function}"


_TEST_CLASS = re.compile(r"Test[A-Z_]\w*|\w*(?:Test|Tests|TestCase|IT)")
_TEST_PATH = re.compile(
    r"(?:^|/)(?:tests?|spec|__tests__)/|(?:^|/)test_[^/]*\.py$|_(?:test|spec)\.(?:py|rb|go)$|\.(?:test|spec)\.[cm]?[jt]sx?$"
)


def _is_test_frame(frame: Frame, language: str) -> bool:
    """A frame of the project's tests: `FooTest.testBar`, tests/test_x.py, x.spec.ts, `TestFoo` in Go."""
    if language in ("java", "dotnet"):
        owner = frame.module.rpartition(".")[2].partition("$")[0]
        return bool(_TEST_CLASS.fullmatch(owner)) or ".Tests." in f"{frame.module}."
    if language == "go":
        return frame.function.startswith("Test")
    if language == "rust":
        return frame.module.endswith("::tests") or "::tests::" in frame.module
    return bool(_TEST_PATH.search(frame.module))


is_test_frame = _is_test_frame
"""Public name for retrieval, which weighs test frames down (agent/retrieval/terms.py)."""


def _closest_frames(stack: ParsedStack) -> tuple[list[Frame], bool]:
    """The in-app frames nearest the error, or all frames when none is in-app; True if in-app.

    A test method is where the code under test was entered from, not where it failed, and tests
    of one bug enter it from different methods: so the frames stop at the first test frame, which
    is kept only when the failure is in the test itself (an assertion).
    """
    chosen: list[Frame] = []
    for frame in stack.frames:
        if not frame.in_app:
            continue
        if _is_test_frame(frame, stack.language):
            if not chosen:
                chosen.append(frame)
            break
        chosen.append(frame)
    if not chosen:
        return list(stack.frames), False
    return chosen, True


def stack_fingerprint(stack: ParsedStack, *, max_frames: int = 6) -> tuple[str, str] | None:
    """Fingerprint material and a human-readable reason, or None when the stack has no frames.

    The material is the exception type, the root cause type (when chained) and up to `max_frames`
    in-app frames closest to the error (all frames when none is in-app; consecutive repeats of a
    frame, as in recursion, count once), e.g.
    "java.lang.NullPointerException|org.foo.Bar.baz|org.foo.Qux.run". The caller hashes it.
    """
    if not stack.frames or max_frames < 1:
        return None
    pool, in_app = _closest_frames(stack)
    chosen: list[Frame] = []
    keys: list[str] = []
    for frame in pool:
        key = _frame_key(frame, stack.language)
        if keys and keys[-1] == key:
            continue
        if len(keys) == max_frames:
            break
        keys.append(key)
        chosen.append(frame)
    exc = stack.exception_type or "<unknown>"
    parts = [exc]
    if stack.causes:
        parts.append(f"caused by {stack.causes[-1]}")
    material = "|".join(parts + keys)

    short = exc.rpartition(".")[2].rpartition("::")[2]
    if stack.causes:
        short += f" (root cause {stack.causes[-1].rpartition('.')[2]})"
    labels = [_frame_label(f, stack.language) for f in chosen[:3]]
    if len(chosen) > 3:
        labels.append("…")
    noun = ("in-app frame" if in_app else "frame") + ("s" if len(chosen) != 1 else "")
    if not in_app:
        noun += " (none in-app)"
    reason = f"stack: {short} at {len(chosen)} {noun}: {' <- '.join(labels)}"
    return material, reason


def in_app_frames(stack_trace: str | None, limit: int = 6) -> list[str]:
    """`module.function` of the innermost in-app frames (all frames when none is in-app), for prompts and embeddings."""
    if not stack_trace:
        return []
    parsed = parse_stack(stack_trace)
    frames = [f for f in parsed.frames if f.in_app] or list(parsed.frames)
    return [f"{f.module}.{f.function}" if f.module else f.function for f in frames[:limit]]
