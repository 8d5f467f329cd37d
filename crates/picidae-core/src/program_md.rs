//! Rewriting an autoresearch-style `program.md` so its instructions match what Picidae does.
//!
//! This module owns that rewrite (pure text in, text out; `picidae import program-md` calls it).
//! Such a file tells the agent to branch, commit, run the experiment itself, read `run.log`, log
//! to `results.tsv`, keep or reset, kill long runs and loop forever; under Picidae the agent makes
//! one change per turn and Picidae does the rest. The rules, in brief:
//!
//! - The text is cut into items: a list item (`-`, `*`, `+`, `N.`, `N)`) with its continuation
//!   lines (indented further, not blank, not list items), a paragraph line, a heading (always
//!   kept) or a fenced code block (as a whole).
//! - An item is classified by case-insensitive patterns for the *class* of instruction, first
//!   match wins in this order: loop forever, branch, results log, keep/revert, commit, reads
//!   log, runs itself, timeout. A fenced block is classified line by line.
//! - A matched item becomes its kind's [`ChangeKind::replacement`], keeping its indentation and
//!   list marker; the second of two consecutive matched items of one kind is dropped. A fenced
//!   block with a matched line becomes the sentences of its kinds as plain lines. Everything
//!   else is kept byte for byte (line endings included).
//! - If anything changed, a section headed [`SECTION_HEADING`] listing the kinds is appended,
//!   unless the file already has one. No replacement sentence or line of that section matches a
//!   pattern, so rewriting is idempotent.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

/// The heading of the section appended to a rewritten file.
pub const SECTION_HEADING: &str = "How this program runs under Picidae";

/// The rewritten text and what was rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rewritten {
    pub text: String,
    pub changes: Vec<Change>,
}

/// One rewritten instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// 1-based line in the input where the instruction starts.
    pub line: usize,
    pub kind: ChangeKind,
    /// The input line(s), each trimmed, joined by `\n`.
    pub original: String,
}

/// The class of an instruction that Picidae takes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Branch,
    Commit,
    RunsItself,
    ReadsLog,
    ResultsLog,
    KeepRevert,
    Timeout,
    LoopForever,
}

impl ChangeKind {
    /// Every kind, in declaration order (the order of the appended section).
    pub const ALL: [ChangeKind; 8] = [
        ChangeKind::Branch,
        ChangeKind::Commit,
        ChangeKind::RunsItself,
        ChangeKind::ReadsLog,
        ChangeKind::ResultsLog,
        ChangeKind::KeepRevert,
        ChangeKind::Timeout,
        ChangeKind::LoopForever,
    ];

    /// The snake_case name, as serialized.
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Branch => "branch",
            ChangeKind::Commit => "commit",
            ChangeKind::RunsItself => "runs_itself",
            ChangeKind::ReadsLog => "reads_log",
            ChangeKind::ResultsLog => "results_log",
            ChangeKind::KeepRevert => "keep_revert",
            ChangeKind::Timeout => "timeout",
            ChangeKind::LoopForever => "loop_forever",
        }
    }

    /// The sentence that says what Picidae does instead. None of them matches a pattern.
    pub fn replacement(self) -> &'static str {
        match self {
            ChangeKind::Branch => "Picidae sets up the branch and your checkout for you; work in the checkout you are given and do not create or switch branches.",
            ChangeKind::Commit => "Picidae commits your change for you; leave it in your checkout (committing it yourself is also fine).",
            ChangeKind::RunsItself => "Picidae runs the experiment for you under the contract's budget and captures its output; do not start it yourself.",
            ChangeKind::ReadsLog => "Picidae reads the metrics from the output of each run and keeps the end of a crashed run's output; earlier attempts and their errors are in the memory (`picidae memory search`).",
            ChangeKind::ResultsLog => "Picidae records every run and its metrics; do not write a results TSV yourself (`picidae export results-tsv` writes one).",
            ChangeKind::KeepRevert => "Picidae keeps a change that improves the metric and reverts one that does not; do not reset or rewrite history yourself.",
            ChangeKind::Timeout => "Picidae stops any run that goes past the contract's time limit and records it as timed out; you do not watch the clock.",
            ChangeKind::LoopForever => "You make one change per turn, then stop; Picidae runs it and calls you again. When you have nothing left to try, print the line `PICIDAE: DONE`.",
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {} ({}): {} -> {}",
            self.line,
            self.kind.name(),
            self.original.replace('\n', " "),
            self.kind.replacement()
        )
    }
}

struct Patterns {
    loop_forever: Regex,
    branch_cmd: Regex,
    branch_word: Regex,
    tag_word: Regex,
    results: Regex,
    keep_revert: Regex,
    discard: Regex,
    git_word: Regex,
    commit: Regex,
    run_log: Regex,
    read_verb: Regex,
    runs_itself: Regex,
    duration: Regex,
    timeout_verb: Regex,
    list_item: Regex,
    para_prefix: Regex,
    fence: Regex,
    heading: Regex,
}

static PATTERNS: LazyLock<Patterns> = LazyLock::new(|| {
    let re = |p: &str| Regex::new(&format!("(?i){p}")).expect("valid pattern");
    Patterns {
        loop_forever: re(concat!(
            r"loop forever|never stop|do not stop|don['’]?t stop|run indefinitely",
            r"|until (?:the human|you are) (?:manually )?(?:stop|interrupt)",
            r"|(?:ask|check with) the (?:human|user)\b.*\b(?:continue|keep going)",
            r"|ask (?:if|whether) (?:you should|to) (?:continue|keep going)",
        )),
        branch_cmd: re(r"\bgit\s+(?:checkout\s+-b|switch\s+-c|branch)\b"),
        branch_word: re(r"\bbranch"),
        tag_word: re(r"\btags?\b"),
        results: re(r"results\.(?:tsv|csv)|results log"),
        keep_revert: re(concat!(
            r"\bgit\s+(?:reset|revert)\b|\bgit\s+checkout\s+--(?:\s|$)",
            r"|advanc(?:e|es|ing)\s+(?:the\s+|your\s+)?branch|keep\s+the\s+commit",
        )),
        discard: re(r"\bdiscard"),
        git_word: re(r"\b(?:git|commit|branch|reset|revert|head)\b"),
        commit: re(r"\bgit\s+(?:commit|add|push)\b(\s+(?:hash|id|sha)\b)?"),
        run_log: re(r"\brun\.log\b"),
        read_verb: re(r"\b(?:grep|tail|cat|read|reads|reading)\b"),
        runs_itself: re(concat!(
            r">\s*\S*run\.log|2>&1|\b(?:uv\s+run|python3?)\s+\S*train|\bbash\s+\S*run",
            r"|\b(?:uv\s+run|python3?|bash)\s+[^>]*>\s*\S",
        )),
        duration: re(r"(?:\d|\b)(?:minutes?|mins?|seconds?|secs?)\b"),
        timeout_verb: re(r"\bkill|\bexceed|\btime-?\s?out\b|\btimes\s+out\b|\btakes?\s+longer\b"),
        list_item: re(r"^([ \t]*(?:>[ \t]*)*(?:[-*+]|\d{1,9}[.)])[ \t]+)\S"),
        para_prefix: re(r"^[ \t]*(?:>[ \t]*)*"),
        fence: re(r"^[ \t]*(?:>[ \t]*)*(`{3,}|~{3,})"),
        heading: re(r"^[ \t]{0,3}#{1,6}(?:[ \t]|$)"),
    }
});

/// The kind of instruction `text` is, if any; first match in the documented order wins.
fn classify(text: &str) -> Option<ChangeKind> {
    let p = &*PATTERNS;
    let kind = if p.loop_forever.is_match(text) {
        ChangeKind::LoopForever
    } else if p.branch_cmd.is_match(text)
        || (p.branch_word.is_match(text) && p.tag_word.is_match(text))
    {
        ChangeKind::Branch
    } else if p.results.is_match(text) {
        ChangeKind::ResultsLog
    } else if p.keep_revert.is_match(text)
        || (p.discard.is_match(text) && p.git_word.is_match(text))
    {
        ChangeKind::KeepRevert
    } else if p.commit.captures_iter(text).any(|c| c.get(1).is_none()) {
        ChangeKind::Commit
    } else if p.run_log.is_match(text) && p.read_verb.is_match(text) {
        ChangeKind::ReadsLog
    } else if p.runs_itself.is_match(text) {
        ChangeKind::RunsItself
    } else if p.duration.is_match(text) && p.timeout_verb.is_match(text) {
        ChangeKind::Timeout
    } else {
        return None;
    };
    Some(kind)
}

struct Line<'a> {
    content: &'a str,
    ending: &'a str,
}

fn split_lines(text: &str) -> Vec<Line<'_>> {
    text.split_inclusive('\n')
        .map(|raw| {
            let content = raw
                .strip_suffix("\r\n")
                .or_else(|| raw.strip_suffix('\n'))
                .unwrap_or(raw);
            Line {
                content,
                ending: &raw[content.len()..],
            }
        })
        .collect()
}

fn indent_width(line: &str) -> usize {
    line.chars()
        .take_while(|c| c.is_whitespace())
        .map(|c| if c == '\t' { 4 } else { 1 })
        .sum()
}

fn is_section_heading(line: &str) -> bool {
    let text = line
        .trim()
        .trim_start_matches('#')
        .trim()
        .trim_end_matches('#')
        .trim();
    PATTERNS.heading.is_match(line) && text.eq_ignore_ascii_case(SECTION_HEADING)
}

/// Index one past the closing fence of the block opened at `start` (the end if unclosed).
fn fence_end(lines: &[Line<'_>], start: usize, fence: &str) -> usize {
    let ch = fence.chars().next().unwrap_or('`');
    for (j, line) in lines.iter().enumerate().skip(start + 1) {
        let t = PATTERNS.para_prefix.replace(line.content, "");
        let run = t.chars().take_while(|&c| c == ch).count();
        if run >= fence.len() && t[run..].trim().is_empty() {
            return j + 1;
        }
    }
    lines.len()
}

/// Output under construction: blank lines are held back so a dropped item takes its own away.
struct Writer<'a> {
    out: String,
    blanks: String,
    last: Option<ChangeKind>,
    newline: &'a str,
}

impl Writer<'_> {
    fn keep(&mut self, lines: &[Line<'_>]) {
        self.out.push_str(&std::mem::take(&mut self.blanks));
        for line in lines {
            self.out.push_str(line.content);
            self.out.push_str(line.ending);
        }
        self.last = None;
    }

    /// Write the sentences of `kinds` (each after `prefix`), skipping a first kind that repeats
    /// the previous matched item; `ending` ends the last sentence.
    fn replace(&mut self, kinds: &[ChangeKind], prefix: &str, ending: &str) {
        let skip = usize::from(kinds.first().copied() == self.last);
        let blanks = std::mem::take(&mut self.blanks);
        if kinds.len() > skip {
            self.out.push_str(&blanks);
            for (n, kind) in kinds.iter().enumerate().skip(skip) {
                self.out.push_str(prefix);
                self.out.push_str(kind.replacement());
                self.out.push_str(if n + 1 == kinds.len() {
                    ending
                } else {
                    self.newline
                });
            }
        }
        self.last = kinds.last().copied();
    }
}

/// Rewrite the autoresearch instructions in `text` into what Picidae does instead.
pub fn rewrite(text: &str) -> Rewritten {
    let p = &*PATTERNS;
    let lines = split_lines(text);
    let newline = match lines.first() {
        Some(line) if line.ending == "\r\n" => "\r\n",
        _ => "\n",
    };
    let mut w = Writer {
        out: String::with_capacity(text.len()),
        blanks: String::new(),
        last: None,
        newline,
    };
    let mut changes = Vec::new();
    let mut has_section = false;
    let mut i = 0;
    while i < lines.len() {
        let line = &lines[i];
        if line.content.trim().is_empty() {
            w.blanks.push_str(line.content);
            w.blanks.push_str(line.ending);
            i += 1;
            continue;
        }
        if is_section_heading(line.content) {
            has_section = true;
            w.keep(&lines[i..]);
            break;
        }
        if p.heading.is_match(line.content) {
            w.keep(&lines[i..=i]);
            i += 1;
            continue;
        }
        if let Some(fence) = p.fence.captures(line.content) {
            let end = fence_end(&lines, i, &fence[1]);
            let mut kinds = Vec::new();
            for (j, inner) in lines.iter().enumerate().take(end).skip(i + 1) {
                if let Some(kind) = classify(inner.content.trim()) {
                    changes.push(Change {
                        line: j + 1,
                        kind,
                        original: inner.content.trim().to_string(),
                    });
                    if !kinds.contains(&kind) {
                        kinds.push(kind);
                    }
                }
            }
            if kinds.is_empty() {
                w.keep(&lines[i..end]);
            } else {
                let prefix = p.para_prefix.find(line.content).map_or("", |m| m.as_str());
                w.replace(&kinds, prefix, lines[end - 1].ending);
            }
            i = end;
            continue;
        }
        let (prefix, end) = match p.list_item.captures(line.content) {
            Some(c) => {
                let indent = indent_width(line.content);
                let mut end = i + 1;
                while let Some(next) = lines.get(end) {
                    let c = next.content;
                    if c.trim().is_empty()
                        || p.list_item.is_match(c)
                        || p.fence.is_match(c)
                        || p.heading.is_match(c)
                        || indent_width(c) <= indent
                    {
                        break;
                    }
                    end += 1;
                }
                (c.get(1).map_or("", |m| m.as_str()), end)
            }
            None => (
                p.para_prefix.find(line.content).map_or("", |m| m.as_str()),
                i + 1,
            ),
        };
        let item = &lines[i..end];
        let first = &item[0].content[prefix.len()..];
        let rest = item[1..].iter().map(|l| l.content.trim());
        let body: Vec<&str> = std::iter::once(first.trim()).chain(rest).collect();
        match classify(&body.join(" ")) {
            Some(kind) => {
                let original: Vec<&str> = item.iter().map(|l| l.content.trim()).collect();
                changes.push(Change {
                    line: i + 1,
                    kind,
                    original: original.join("\n"),
                });
                w.replace(&[kind], prefix, item[item.len() - 1].ending);
            }
            None => w.keep(item),
        }
        i = end;
    }
    w.out.push_str(&w.blanks);
    if changes.is_empty() {
        return Rewritten {
            text: text.to_string(),
            changes,
        };
    }
    let mut out = w.out;
    if !has_section {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push_str(newline);
        }
        if !(out.is_empty() || out.ends_with("\n\n") || out.ends_with("\n\r\n")) {
            out.push_str(newline);
        }
        let n = changes.len();
        let (noun, verb) = if n == 1 {
            ("instruction", "was")
        } else {
            ("instructions", "were")
        };
        out.push_str(&format!("## {SECTION_HEADING}{newline}{newline}"));
        out.push_str(&format!(
            "(This section was added by `picidae import program-md`; {n} {noun} above {verb} rewritten.){newline}{newline}"
        ));
        for kind in ChangeKind::ALL {
            if changes.iter().any(|c| c.kind == kind) {
                out.push_str(&format!("- {}{newline}", kind.replacement()));
            }
        }
    }
    Rewritten { text: out, changes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChangeKind::*;

    const FIXTURE: &str = r##"# autoresearch

This file tells you, the agent, how to run a night of autonomous research on a small language model.

## Setup

Work through these steps with the human before the first experiment:

1. Agree on a run tag with the user, for example today's date (`jun12`). The branch `autoresearch/<tag>` must not exist yet.
2. Create it from master: `git checkout -b autoresearch/<tag>`.
3. Read the in-scope files, they are small:
   - `README.md`: what this repository is.
   - `prepare.py`: data, tokenizer and evaluation. Do not change it.
   - `train.py`: the model and the training loop, the file you edit.
4. Check that `~/.cache/autoresearch/` holds the data shards; if it does not, ask the human to run `uv run prepare.py`.
5. Initialise `results.tsv` with only its header row
   (`commit val_bpb memory_gb status description`, tab-separated); the baseline goes in after the first run.
6. Confirm with the human that everything looks right, then begin.

## Experimentation

Each experiment runs on a single GPU. The training script always trains for a fixed budget of 5 minutes of wall-clock time, not counting startup and compilation, so results are comparable.

**What you CAN do:**
- Edit `train.py`. It is the only file you change: architecture, optimiser, hyperparameters, batch size, model size, anything.

**What you CANNOT do:**
- Edit `prepare.py`. It holds the fixed evaluation, the data loader and the constants.
- Install packages or add dependencies. Use only what `pyproject.toml` already lists.
- Touch the evaluation: `evaluate_bpb` in `prepare.py` is the ground truth.

**The goal: get the lowest val_bpb.** Since the time budget is fixed, model size and batch size are yours to trade; the only constraints are that the code runs without crashing and finishes inside the budget.

**Simplicity criterion**: all else equal, simpler is better. A tiny gain that adds twenty lines of hacky code is not worth it. Deleting code and getting an equal or better result is a clear win: keep it.

The first run is always the baseline: train with the script exactly as it is.

## Output format

When the script finishes it prints a summary like this:

```
---
val_bpb:          0.997900
training_seconds: 300.1
total_seconds:    325.9
peak_vram_mb:     45060.2
num_steps:        953
depth:            8
```

The line that matters is `val_bpb`; lower is better.

## Logging results

When an experiment is done, append a row to `results.tsv`. Use tabs, not commas: commas break descriptions.

The columns are:

1. `commit`: the short git commit hash (7 characters)
2. `val_bpb`: validation bits per byte, 0.000000 for a crash
3. `memory_gb`: peak memory in GB with one decimal (peak_vram_mb / 1024)
4. `status`: `keep`, `discard` or `crash`
5. `description`: a short note on what the experiment tried

```
commit  val_bpb   memory_gb  status   description
a1b2c3d 0.997900  44.0       keep     baseline
c3d4e5f 1.005000  44.0       discard  swap GeLU for ReLU
```

Leave `results.tsv` out of git: never commit it.

## The experiment loop

LOOP FOREVER:

1. Look at the git state: the current branch and the last commit.
2. Edit `train.py` to try one idea.
3. `git commit -am "<what you tried>"`
4. Run it: `uv run train.py > run.log 2>&1`
   (everything goes to the file; do not use tee or let the output flood your context)
5. Read the result: `grep "^val_bpb:\|^peak_vram_mb:" run.log`
6. If grep prints nothing, the run crashed: `tail -n 50 run.log` shows the stack trace.
   Fix simple mistakes; give up on the idea after a few attempts.
7. Record the result in `results.tsv`.
8. If val_bpb went down, advance the branch: keep the commit.
9. Otherwise `git reset --hard HEAD~1` back to where you started.

**Timeout**: a run should take about 5 minutes plus startup. If one takes longer than 10 minutes, kill it and count it as a failure.

**Crashes**: if a run dies because of something silly (a typo, a missing import), fix it and try again. If the idea itself is broken, log it as a crash and move on.

**NEVER STOP**: once the loop has begun, do not pause to ask the human whether you should continue. They may be asleep. Keep going until you are manually stopped.
"##;

    fn line_of(needle: &str) -> usize {
        let hits: Vec<usize> = FIXTURE
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains(needle))
            .map(|(n, _)| n + 1)
            .collect();
        assert_eq!(hits.len(), 1, "{needle:?} must occur on exactly one line");
        hits[0]
    }

    fn section(text: &str, from: &str, to: &str) -> String {
        let start = text.find(from).expect("section start");
        let end = text[start..].find(to).expect("section end") + start;
        text[start..end].to_string()
    }

    #[test]
    fn finds_each_kind_on_its_line() {
        let got: Vec<(usize, ChangeKind)> = rewrite(FIXTURE)
            .changes
            .iter()
            .map(|c| (c.line, c.kind))
            .collect();
        let want = vec![
            (line_of("Agree on a run tag"), Branch),
            (line_of("git checkout -b"), Branch),
            (line_of("Initialise `results.tsv`"), ResultsLog),
            (line_of("append a row to `results.tsv`"), ResultsLog),
            (line_of("Leave `results.tsv` out"), ResultsLog),
            (line_of("LOOP FOREVER"), LoopForever),
            (line_of("git commit -am"), Commit),
            (line_of("uv run train.py"), RunsItself),
            (line_of("grep \"^val_bpb"), ReadsLog),
            (line_of("tail -n 50"), ReadsLog),
            (line_of("Record the result"), ResultsLog),
            (line_of("advance the branch"), KeepRevert),
            (line_of("git reset --hard"), KeepRevert),
            (line_of("**Timeout**"), Timeout),
            (line_of("**NEVER STOP**"), LoopForever),
        ];
        assert_eq!(got, want);
        let run = &rewrite(FIXTURE).changes[7];
        assert_eq!(run.original, "4. Run it: `uv run train.py > run.log 2>&1`\n(everything goes to the file; do not use tee or let the output flood your context)");
    }

    #[test]
    fn kept_sections_survive_byte_for_byte() {
        let out = rewrite(FIXTURE).text;
        for (from, to) in [
            ("# autoresearch", "## Setup"),
            ("## Experimentation", "## Logging results"),
            ("The columns are:", "Leave `results.tsv`"),
        ] {
            let kept = section(FIXTURE, from, to);
            assert!(out.contains(&kept), "section {from:?} changed");
        }
        let setup = section(&out, "## Setup", "## Experimentation");
        let want = format!(
            "## Setup\n\nWork through these steps with the human before the first experiment:\n\n1. {}\n{}4. {}\n5. {}\n6. {}\n\n",
            Branch.replacement(),
            section(FIXTURE, "3. Read the in-scope", "4. Check"),
            section(FIXTURE, "Check that", "\n5."),
            ResultsLog.replacement(),
            "Confirm with the human that everything looks right, then begin.",
        );
        assert_eq!(setup, want);
    }

    #[test]
    fn loop_section_and_appended_section_are_exact() {
        let out = rewrite(FIXTURE).text;
        let tail = &out[out.find("## The experiment loop").unwrap()..];
        let s = |k: ChangeKind| k.replacement();
        let want = format!(
            "## The experiment loop\n\n{}\n\n\
             1. Look at the git state: the current branch and the last commit.\n\
             2. Edit `train.py` to try one idea.\n3. {}\n4. {}\n5. {}\n7. {}\n8. {}\n\n{}\n\n{}\n\n{}\n\n\
             ## How this program runs under Picidae\n\n\
             (This section was added by `picidae import program-md`; 15 instructions above were rewritten.)\n\n\
             - {}\n- {}\n- {}\n- {}\n- {}\n- {}\n- {}\n- {}\n",
            s(LoopForever),
            s(Commit),
            s(RunsItself),
            s(ReadsLog),
            s(ResultsLog),
            s(KeepRevert),
            s(Timeout),
            section(FIXTURE, "**Crashes**", "\n\n**NEVER"),
            s(LoopForever),
            s(Branch),
            s(Commit),
            s(RunsItself),
            s(ReadsLog),
            s(ResultsLog),
            s(KeepRevert),
            s(Timeout),
            s(LoopForever),
        );
        assert_eq!(tail, want);
    }

    #[test]
    fn rewriting_is_idempotent_and_sentences_match_nothing() {
        for kind in ChangeKind::ALL {
            assert_eq!(classify(kind.replacement()), None, "{kind:?}");
        }
        let once = rewrite(FIXTURE).text;
        let twice = rewrite(&once);
        assert_eq!(twice.text, once);
        assert!(twice.changes.is_empty());
        let section = &once[once.find("## How this").unwrap()..];
        for line in section.lines() {
            assert_eq!(classify(line), None, "{line:?}");
        }
        // The section alone, moved to the top of another file, is not rewritten or duplicated.
        let moved = format!("{section}\nPlain text.\n");
        assert_eq!(rewrite(&moved).text, moved);
    }

    #[test]
    fn a_file_without_such_instructions_is_unchanged() {
        let text = "# Notes\n\n- Edit `model.py` only.\n- Lower loss is better; simpler code wins.\n\n```\nloss: 1.23\n```\nNo final newline";
        let got = rewrite(text);
        assert_eq!(got.text, text);
        assert!(got.changes.is_empty());
    }

    #[test]
    fn crlf_input_keeps_crlf_everywhere() {
        let crlf = FIXTURE.replace('\n', "\r\n");
        let got = rewrite(&crlf);
        assert_eq!(got.text, rewrite(FIXTURE).text.replace('\n', "\r\n"));
        assert!(got
            .text
            .contains(&section(&crlf, "## Experimentation", "## Logging")));
        assert_eq!(got.changes.len(), 15);
        let one = "Intro.\r\n\r\n- git push origin HEAD";
        assert_eq!(
            rewrite(one).text,
            format!("Intro.\r\n\r\n- {}\r\n\r\n## {SECTION_HEADING}\r\n\r\n(This section was added by `picidae import program-md`; 1 instruction above was rewritten.)\r\n\r\n- {}\r\n", Commit.replacement(), Commit.replacement())
        );
    }

    #[test]
    fn a_fenced_command_block_is_replaced_by_its_sentences() {
        let text = "Run:\n\n  ```bash\n  uv run train.py > run.log 2>&1\n  grep val_bpb run.log\n  ```\nafter\n";
        let got = rewrite(text);
        let kinds: Vec<(usize, ChangeKind)> =
            got.changes.iter().map(|c| (c.line, c.kind)).collect();
        assert_eq!(kinds, vec![(4, RunsItself), (5, ReadsLog)]);
        let want = format!(
            "Run:\n\n  {}\n  {}\nafter\n",
            RunsItself.replacement(),
            ReadsLog.replacement()
        );
        assert!(got.text.starts_with(&want), "{}", got.text);
    }

    #[test]
    fn other_wordings_of_the_same_instructions_match() {
        let cases = [
            (
                "Keep iterating until the human interrupts you.",
                Some(LoopForever),
            ),
            (
                "Don't check with the user whether to keep going.",
                Some(LoopForever),
            ),
            ("Start with `git switch -c exp/run1`.", Some(Branch)),
            ("Append your numbers to results.csv.", Some(ResultsLog)),
            ("If it got worse, discard the commit.", Some(KeepRevert)),
            ("Undo with `git revert HEAD`.", Some(KeepRevert)),
            ("Then `git add -A && git push`.", Some(Commit)),
            ("Use `cat run.log` to see what happened.", Some(ReadsLog)),
            (
                "Launch `python3 main.py --steps 100 > out.txt`.",
                Some(RunsItself),
            ),
            ("Call `python scripts/train_gpt.py`.", Some(RunsItself)),
            ("If training exceeds 15 min, abort it.", Some(Timeout)),
            ("Only edit the Python code in train.py.", None),
            ("Record the git commit hash of each run.", None),
            ("Run `uv run prepare.py` once to fetch the data.", None),
        ];
        for (text, want) in cases {
            assert_eq!(classify(text), want, "{text:?}");
        }
    }

    #[test]
    fn consecutive_same_kind_is_written_once_and_display_names_it() {
        let text = "Intro.\n\n* git commit -am x\n\n* git push\n\nEnd.";
        let got = rewrite(text);
        assert_eq!(got.changes.len(), 2);
        assert!(got.text.starts_with(&format!(
            "Intro.\n\n* {}\n\nEnd.\n\n## ",
            Commit.replacement()
        )));
        assert_eq!(
            got.changes[0].to_string(),
            format!(
                "line 3 (commit): * git commit -am x -> {}",
                Commit.replacement()
            )
        );
    }
}
