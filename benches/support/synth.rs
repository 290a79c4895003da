//! Deterministic synthetic Debian package metadata (names, versions, control stanzas, payload
//! files) shaped like a real Packages index, so benchmarks parse and store realistic input.

use std::collections::HashSet;
use std::fmt::Write;

/// SplitMix64: tiny and seedable; every package derives its own stream from its seed so the
/// corpus can be rendered in parallel and still be byte-identical on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Inclusive range.
    pub fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    pub fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    pub fn pick_string(&mut self, items: &[String]) -> String {
        items[self.below(items.len())].clone()
    }
}

/// What a binary package is for; drives its name, architecture, section and dependencies.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    SharedLib,
    Dev,
    Doc,
    Tool,
    App,
    Data,
    Python,
    Perl,
    Golang,
    Node,
    Font,
}

impl Kind {
    pub fn is_arch_all(self) -> bool {
        matches!(
            self,
            Kind::Doc
                | Kind::Data
                | Kind::Python
                | Kind::Perl
                | Kind::Golang
                | Kind::Node
                | Kind::Font
        )
    }

    fn section(self, rng: &mut Rng) -> &'static str {
        match self {
            Kind::SharedLib => "libs",
            Kind::Dev => "libdevel",
            Kind::Doc => "doc",
            Kind::Python => "python",
            Kind::Perl => "perl",
            Kind::Golang => "golang",
            Kind::Node => "javascript",
            Kind::Font => "fonts",
            Kind::Tool | Kind::App | Kind::Data => rng.pick(APP_SECTIONS),
        }
    }

    fn multi_arch(self) -> Option<&'static str> {
        match self {
            Kind::SharedLib | Kind::Dev => Some("same"),
            Kind::Doc | Kind::Data | Kind::Perl | Kind::Font | Kind::Golang => Some("foreign"),
            Kind::Python | Kind::Node | Kind::Tool | Kind::App => None,
        }
    }
}

/// One .deb to generate. Rendering details are drawn later from `seed`.
pub struct PackageSpec {
    pub name: String,
    pub source: String,
    pub version: String,
    pub source_version: String,
    pub arch: &'static str,
    pub kind: Kind,
    pub stem: String,
    /// The source's shared library, which -dev packages and tools depend on.
    pub library: Option<String>,
    pub seed: u64,
}

impl PackageSpec {
    /// Conventional pool file name; the epoch is not part of it, as in Debian.
    pub fn file_name(&self) -> String {
        let version = self
            .version
            .split_once(':')
            .map_or(&*self.version, |(_, v)| v);
        format!("{}_{}_{}.deb", self.name, version, self.arch)
    }
}

/// A source package: the unit that owns a name stem, a version history and its binaries.
struct SourcePlan {
    name: String,
    stem: String,
    binaries: Vec<(String, Kind)>,
    versions: Vec<String>,
    arm64_too: bool,
}

/// Plans `count` packages: unique binary names, a few names with several versions (history),
/// some sources built for arm64 as well as amd64.
pub fn plan_corpus(count: usize, seed: u64) -> Vec<PackageSpec> {
    let mut taken = HashSet::new();
    let mut specs = Vec::with_capacity(count);
    let mut index = 0u64;
    while specs.len() < count {
        assert!(index < 20 * count as u64 + 1000, "name space exhausted");
        let mut rng = Rng::new(seed ^ index.wrapping_mul(0xA24B_AED4_963E_E407));
        let source = plan_source(stem_for(index), &mut rng);
        index += 1;
        // Skip a source whose names collide with earlier ones rather than renaming: keeps
        // the plan a pure function of the seed.
        if source.binaries.iter().any(|(name, _)| taken.contains(name)) {
            continue;
        }
        taken.extend(source.binaries.iter().map(|(name, _)| name.clone()));
        push_binaries(&source, &mut rng, &mut specs);
    }
    specs.truncate(count);
    specs
}

fn push_binaries(source: &SourcePlan, rng: &mut Rng, specs: &mut Vec<PackageSpec>) {
    let library = source
        .binaries
        .iter()
        .find(|(_, kind)| *kind == Kind::SharedLib);
    for (position, version) in source.versions.iter().enumerate() {
        let newest = position + 1 == source.versions.len();
        for (name, kind) in &source.binaries {
            let archs: &[&'static str] = match (kind.is_arch_all(), source.arm64_too) {
                (true, _) => &["all"],
                (false, false) => &["amd64"],
                (false, true) => &["amd64", "arm64"],
            };
            // binNMUs: only arch-specific binaries of the current upload get rebuilt.
            let bin_nmu = newest && !kind.is_arch_all() && rng.percent(4);
            for arch in archs {
                specs.push(PackageSpec {
                    name: name.clone(),
                    source: source.name.clone(),
                    version: if bin_nmu {
                        format!("{version}+b1")
                    } else {
                        version.clone()
                    },
                    source_version: version.clone(),
                    arch,
                    kind: *kind,
                    stem: source.stem.clone(),
                    library: library.map(|(name, _)| name.clone()),
                    seed: rng.next_u64(),
                });
            }
        }
    }
}

/// Unique-ish stem for source number `index`: one or two words, spread over the word list by
/// a prime multiplier (a bijection mod the space) so neighbouring sources do not share a first word.
fn stem_for(index: u64) -> String {
    let words = STEM_WORDS.len() as u64;
    let space = words * words * 2;
    let scrambled = index.wrapping_mul(0x9E37_79B1) % space;
    let first = STEM_WORDS[(scrambled % words) as usize];
    let second = STEM_WORDS[((scrambled / words) % words) as usize];
    let mut stem = match (index < words, scrambled / (words * words)) {
        (true, _) => STEM_WORDS[index as usize].to_string(),
        (false, 0) => format!("{first}{second}"),
        (false, _) => format!("{first}-{second}"),
    };
    // Past the two-word space, a third word keeps names coming for huge corpora.
    if index >= space {
        stem.push('-');
        stem.push_str(STEM_WORDS[((index / space) % words) as usize]);
    }
    stem
}

fn plan_source(stem: String, rng: &mut Rng) -> SourcePlan {
    let roll = rng.below(100);
    let (name, binaries) = match roll {
        0..=41 => library_source(&stem, rng),
        42..=49 => python_source(&stem, rng),
        50..=83 => app_source(&stem, rng),
        84..=89 => (
            format!("lib{stem}-perl"),
            vec![(format!("lib{stem}-perl"), Kind::Perl)],
        ),
        90..=93 => single(
            format!("golang-{stem}"),
            format!("golang-{stem}-dev"),
            Kind::Golang,
        ),
        94..=96 => single(format!("node-{stem}"), format!("node-{stem}"), Kind::Node),
        _ => single(format!("fonts-{stem}"), format!("fonts-{stem}"), Kind::Font),
    };
    // Most sources have one version; a few keep history like a long-lived repository.
    let history = match rng.below(100) {
        0..=2 => 2,
        3 => 3,
        _ => 1,
    };
    SourcePlan {
        name,
        stem,
        binaries,
        versions: version_history(rng, history),
        arm64_too: rng.percent(6),
    }
}

fn single(source: String, binary: String, kind: Kind) -> (String, Vec<(String, Kind)>) {
    (source, vec![(binary, kind)])
}

fn library_source(stem: &str, rng: &mut Rng) -> (String, Vec<(String, Kind)>) {
    let soname = rng.pick(SONAMES);
    let mut binaries = vec![(format!("lib{stem}{soname}"), Kind::SharedLib)];
    if rng.percent(80) {
        binaries.push((format!("lib{stem}-dev"), Kind::Dev));
    }
    if rng.percent(10) {
        binaries.push((format!("lib{stem}-doc"), Kind::Doc));
    }
    if rng.percent(25) {
        binaries.push((
            format!("{stem}-{}", rng.pick(&["tools", "utils", "bin"])),
            Kind::Tool,
        ));
    }
    // Library sources are often named lib*, like their binaries (pool/main/libX/).
    let source = if rng.percent(55) {
        format!("lib{stem}")
    } else {
        stem.to_string()
    };
    (source, binaries)
}

fn python_source(stem: &str, rng: &mut Rng) -> (String, Vec<(String, Kind)>) {
    let mut binaries = vec![(format!("python3-{stem}"), Kind::Python)];
    if rng.percent(10) {
        binaries.push((format!("python-{stem}-doc"), Kind::Doc));
    }
    let source = if rng.percent(60) {
        format!("python-{stem}")
    } else {
        stem.to_string()
    };
    (source, binaries)
}

fn app_source(stem: &str, rng: &mut Rng) -> (String, Vec<(String, Kind)>) {
    let mut binaries = vec![(stem.to_string(), Kind::App)];
    if rng.percent(12) {
        binaries.push((
            format!("{stem}-{}", rng.pick(&["data", "common"])),
            Kind::Data,
        ));
    }
    if rng.percent(6) {
        binaries.push((format!("{stem}-doc"), Kind::Doc));
    }
    (stem.to_string(), binaries)
}

/// Oldest first. Shapes seen in Debian: epochs, native versions, ~rc, +dfsg, stable updates,
/// backports.
fn version_history(rng: &mut Rng, count: usize) -> Vec<String> {
    let epoch = match rng.below(100) {
        0..=5 => "1:",
        6 => "2:",
        _ => "",
    };
    let major = rng.pick(&[0, 0, 1, 1, 1, 2, 2, 3, 4, 5, 7, 9, 12, 20, 115]);
    let minor = rng.below(30);
    let patch = rng.between(count, count + 15);
    let upstream_suffix = rng.pick(&[
        "",
        "",
        "",
        "",
        "",
        "",
        "+dfsg",
        "+ds",
        "~rc2",
        "+git20230112",
    ]);
    let native = rng.percent(5);
    let revision = rng.between(1, 6);
    let dist_suffix = rng.pick(&[
        "", "", "", "", "", "", "", "+deb12u1", "+deb12u2", "~bpo12+1",
    ]);
    let two_part = count == 1 && rng.percent(25);
    (0..count)
        .map(|age| {
            let age = count - 1 - age;
            let mut version = format!("{epoch}{major}.{minor}");
            if !two_part {
                write!(version, ".{}", patch - age).unwrap();
            }
            version.push_str(upstream_suffix);
            if !native {
                write!(version, "-{revision}{dist_suffix}").unwrap();
            }
            version
        })
        .collect()
}

/// A payload file: path without the leading "./".
pub struct DataFile {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// Payload: always a DEP-5 copyright file; arch-specific packages also ship a small binary.
pub fn data_files(spec: &PackageSpec, rng: &mut Rng) -> Vec<DataFile> {
    let mut files = vec![DataFile {
        path: format!("usr/share/doc/{}/copyright", spec.name),
        bytes: copyright_text(spec, rng).into_bytes(),
    }];
    if spec.arch != "all" {
        let triplet = if spec.arch == "arm64" {
            "aarch64-linux-gnu"
        } else {
            "x86_64-linux-gnu"
        };
        let path = match spec.kind {
            Kind::SharedLib => format!("usr/lib/{triplet}/lib{}.so.{}", spec.stem, rng.below(9)),
            Kind::Dev => format!("usr/lib/{triplet}/lib{}.a", spec.stem),
            _ => format!("usr/bin/{}", spec.name),
        };
        let size = rng.between(256, 6 * 1024);
        files.push(DataFile {
            path,
            bytes: binary_blob(rng, size),
        });
    }
    files
}

/// Machine-code-like bytes: runs of zeros, repeated opcodes and noise, so xz compresses it
/// about as well as a real small ELF (roughly 2-3x), not 100x.
fn binary_blob(rng: &mut Rng, size: usize) -> Vec<u8> {
    const OPCODES: &[&[u8]] = &[
        &[0x48, 0x89, 0xe5],
        &[0x48, 0x83, 0xec, 0x10],
        &[0xe8, 0x00, 0x00, 0x00, 0x00],
        &[0xc3],
        &[0x0f, 0x1f, 0x44, 0x00, 0x00],
        &[0x41, 0x57, 0x41, 0x56],
    ];
    let mut blob = b"\x7fELF\x02\x01\x01\0".to_vec();
    while blob.len() < size {
        match rng.below(10) {
            0..=2 => blob.extend(std::iter::repeat_n(0u8, rng.between(4, 24))),
            3..=6 => blob.extend_from_slice(rng.pick(OPCODES)),
            _ => blob.extend((0..8).map(|_| rng.next_u64() as u8)),
        }
    }
    blob.truncate(size);
    blob
}

fn copyright_text(spec: &PackageSpec, rng: &mut Rng) -> String {
    let author = person(rng);
    let license = rng.pick(&[
        "GPL-2+",
        "MIT",
        "Apache-2.0",
        "BSD-3-clause",
        "LGPL-2.1+",
        "Artistic",
    ]);
    let mut text = format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: {stem}\nUpstream-Contact: {author}\nSource: {home}\n\n\
         Files: *\nCopyright: {from}-2023 {author}\nLicense: {license}\n\n\
         Files: debian/*\nCopyright: 2021-2023 {packager}\nLicense: {license}\n\n\
         License: {license}\n",
        stem = spec.stem,
        home = homepage(spec, rng),
        from = rng.between(1995, 2020),
        packager = person(rng),
    );
    let lines = rng.between(2, 14);
    append_prose(&mut text, rng, lines, 72);
    text
}

/// Appends `lines` lines of filler prose, each indented by one space as in control files.
fn append_prose(out: &mut String, rng: &mut Rng, lines: usize, width: usize) {
    for _ in 0..lines {
        let target = rng.between(width / 2, width);
        let mut line = String::from(" ");
        while line.len() < target {
            if line.len() > 1 {
                line.push(' ');
            }
            line.push_str(rng.pick(PROSE_WORDS));
        }
        out.push_str(&line);
        out.push('\n');
    }
}

fn person(rng: &mut Rng) -> String {
    let first = rng.pick(FIRST_NAMES);
    let last = rng.pick(LAST_NAMES);
    let domain = rng.pick(&[
        "debian.org",
        "gmail.com",
        "example.org",
        "users.sourceforge.net",
    ]);
    format!(
        "{first} {last} <{}.{}@{domain}>",
        first.to_lowercase(),
        last.to_lowercase()
    )
}

fn homepage(spec: &PackageSpec, rng: &mut Rng) -> String {
    let stem = &spec.stem;
    match spec.kind {
        Kind::Python => format!("https://pypi.org/project/{stem}/"),
        Kind::Perl => format!("https://metacpan.org/release/{stem}"),
        Kind::Golang => format!("https://github.com/{stem}/{stem}"),
        Kind::Node => format!("https://www.npmjs.com/package/{stem}"),
        _ => match rng.below(3) {
            0 => format!("https://{stem}.org/"),
            1 => format!("https://github.com/{stem}/{stem}"),
            _ => format!("https://gitlab.com/{stem}-project/{stem}"),
        },
    }
}

/// The control file: fields in the order dpkg-gencontrol writes them. `libs` is a sample of
/// shared-library names from the corpus, so packages also depend on each other.
pub fn control_stanza(
    spec: &PackageSpec,
    installed_kib: u64,
    libs: &[String],
    rng: &mut Rng,
) -> String {
    let mut out = format!("Package: {}\n", spec.name);
    if spec.source != spec.name || spec.version != spec.source_version {
        out.push_str("Source: ");
        out.push_str(&spec.source);
        if spec.version != spec.source_version {
            write!(out, " ({})", spec.source_version).unwrap();
        }
        out.push('\n');
    }
    writeln!(
        out,
        "Version: {}\nArchitecture: {}",
        spec.version, spec.arch
    )
    .unwrap();
    writeln!(out, "Maintainer: {}", maintainer(spec, rng)).unwrap();
    writeln!(out, "Installed-Size: {installed_kib}").unwrap();
    relation_fields(&mut out, spec, libs, rng);
    writeln!(out, "Section: {}", spec.kind.section(rng)).unwrap();
    let priority = if rng.percent(97) {
        "optional"
    } else {
        "important"
    };
    writeln!(out, "Priority: {priority}").unwrap();
    if let Some(multi_arch) = spec.kind.multi_arch() {
        writeln!(out, "Multi-Arch: {multi_arch}").unwrap();
    }
    if rng.percent(88) {
        writeln!(out, "Homepage: {}", homepage(spec, rng)).unwrap();
    }
    description(&mut out, spec, rng);
    out
}

fn maintainer(spec: &PackageSpec, rng: &mut Rng) -> String {
    let team = match spec.kind {
        Kind::Python => "Debian Python Team <team+python@tracker.debian.org>",
        Kind::Perl => "Debian Perl Group <pkg-perl-maintainers@lists.alioth.debian.org>",
        Kind::Golang => "Debian Go Packaging Team <team+pkg-go@tracker.debian.org>",
        Kind::Node => {
            "Debian Javascript Maintainers <pkg-javascript-devel@lists.alioth.debian.org>"
        }
        Kind::Font => "Debian Fonts Task Force <debian-fonts@lists.debian.org>",
        _ => return person(rng),
    };
    if rng.percent(85) {
        team.to_string()
    } else {
        person(rng)
    }
}

fn relation_fields(out: &mut String, spec: &PackageSpec, libs: &[String], rng: &mut Rng) {
    if rng.percent(7) {
        let pre = rng.pick(&[
            "dpkg (>= 1.17.14)",
            "init-system-helpers (>= 1.54~)",
            "debconf (>= 0.5) | debconf-2.0",
        ]);
        writeln!(out, "Pre-Depends: {pre}").unwrap();
    }
    let depends = depends_list(spec, libs, rng);
    if !depends.is_empty() {
        writeln!(out, "Depends: {}", depends.join(", ")).unwrap();
    }
    for (field, chance) in [("Recommends", 30), ("Suggests", 28)] {
        if rng.percent(chance) {
            let count = rng.between(1, 4);
            let list: Vec<String> = (0..count).map(|_| soft_relation(spec, libs, rng)).collect();
            writeln!(out, "{field}: {}", list.join(", ")).unwrap();
        }
    }
    if rng.percent(8) {
        let old = format!("{}-old (<< {})", spec.name, spec.source_version);
        writeln!(out, "Breaks: {old}").unwrap();
        if rng.percent(80) {
            writeln!(out, "Replaces: {old}").unwrap();
        }
    }
    if rng.percent(10) {
        writeln!(out, "Provides: {}", provides(spec)).unwrap();
    }
}

fn provides(spec: &PackageSpec) -> String {
    match spec.kind {
        Kind::Python => format!("python3.11-{}", spec.stem),
        Kind::SharedLib => format!("lib{}-abi-{}", spec.stem, spec.source_version.len() % 5),
        Kind::Golang => format!(
            "golang-github-{}-{}-dev (= {})",
            spec.stem, spec.stem, spec.version
        ),
        _ => format!("{}-virtual", spec.stem),
    }
}

fn depends_list(spec: &PackageSpec, libs: &[String], rng: &mut Rng) -> Vec<String> {
    let mut deps = Vec::new();
    match spec.kind {
        Kind::SharedLib | Kind::Tool | Kind::App => {
            deps.push(format!("libc6 (>= 2.{})", rng.between(14, 36)));
            if let (Some(library), false) = (&spec.library, spec.kind == Kind::SharedLib) {
                deps.push(format!("{library} (>= {})", spec.source_version));
            }
            for _ in 0..rng.between(0, 5) {
                deps.push(rng.pick(COMMON_LIBS).to_string());
            }
            for _ in 0..rng.between(0, 2) {
                deps.push(format!(
                    "{} (>= {}.{})",
                    rng.pick_string(libs),
                    rng.below(5),
                    rng.below(20)
                ));
            }
        }
        Kind::Dev => {
            // -dev packages pin their runtime library to the exact version.
            if let Some(library) = &spec.library {
                deps.push(format!("{library} (= {})", spec.version));
            }
            for _ in 0..rng.between(0, 3) {
                deps.push(rng.pick(DEV_LIBS).to_string());
            }
        }
        Kind::Python => deps.push("python3:any".to_string()),
        Kind::Perl => deps.push("perl:any".to_string()),
        Kind::Node => deps.push("nodejs:any".to_string()),
        Kind::Doc | Kind::Data | Kind::Golang | Kind::Font => {}
    }
    if rng.percent(25) {
        deps.push(rng.pick(ALTERNATIVES).to_string());
    }
    deps.sort();
    deps.dedup();
    deps
}

fn soft_relation(spec: &PackageSpec, libs: &[String], rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => format!("{}-doc", spec.stem),
        1 => rng.pick_string(libs),
        2 => rng.pick(ALTERNATIVES).to_string(),
        _ => rng.pick(COMMON_LIBS).to_string(),
    }
}

/// Synopsis, then paragraphs separated by " .", sometimes a bullet list, ending with the
/// usual "This package contains ..." sentence.
fn description(out: &mut String, spec: &PackageSpec, rng: &mut Rng) {
    writeln!(out, "Description: {}", synopsis(spec, rng)).unwrap();
    // 5-20 continuation lines in all; the closing sentence and its separator take two.
    let mut remaining = rng.between(5, 20) - 2;
    while remaining > 0 {
        let paragraph = rng.between(2, 6).min(remaining);
        if rng.percent(20) {
            bullets(out, rng, paragraph);
        } else {
            append_prose(out, rng, paragraph, 78);
        }
        remaining -= paragraph;
        if remaining >= 3 {
            out.push_str(" .\n");
            remaining -= 1;
        }
    }
    out.push_str(" .\n");
    writeln!(
        out,
        " This package contains the {}.",
        content_phrase(spec.kind)
    )
    .unwrap();
}

fn synopsis(spec: &PackageSpec, rng: &mut Rng) -> String {
    let adjective = rng.pick(ADJECTIVES);
    let noun = rng.pick(NOUNS);
    let stem = &spec.stem;
    match spec.kind {
        Kind::SharedLib => format!("{adjective} {noun} library for {stem} - shared library"),
        Kind::Dev => format!("{adjective} {noun} library for {stem} - development files"),
        Kind::Doc => format!("{adjective} {noun} toolkit - documentation"),
        Kind::Python => format!("{adjective} {noun} module for Python 3"),
        Kind::Perl => format!("Perl module providing a {adjective} {noun}"),
        Kind::Golang => format!("{adjective} {noun} library for Go"),
        Kind::Node => format!("{adjective} {noun} for Node.js"),
        Kind::Font => format!("{adjective} {noun} font family"),
        Kind::App | Kind::Tool | Kind::Data => {
            format!("{adjective} {noun} {}", rng.pick(TOOL_NOUNS))
        }
    }
}

fn bullets(out: &mut String, rng: &mut Rng, count: usize) {
    for _ in 0..count {
        writeln!(
            out,
            "  * {} {} {}",
            rng.pick(ADJECTIVES),
            rng.pick(NOUNS),
            rng.pick(PROSE_WORDS)
        )
        .unwrap();
    }
}

fn content_phrase(kind: Kind) -> &'static str {
    match kind {
        Kind::SharedLib => "shared library",
        Kind::Dev => "development headers and static library",
        Kind::Doc => "documentation",
        Kind::Data => "architecture independent data files",
        Kind::Python => "Python 3 module",
        Kind::Golang => "Go source code",
        _ => "program and its manual pages",
    }
}

const APP_SECTIONS: &[&str] = &[
    "utils", "net", "admin", "games", "graphics", "sound", "editors", "devel", "misc", "web",
    "x11", "science", "text", "mail", "database", "video", "shells", "math",
];

const SONAMES: &[&str] = &[
    "0", "1", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "12", "-1.0-0", "-2.0-0", "-3",
    "2a", "1t64", "0d",
];

const COMMON_LIBS: &[&str] = &[
    "libgcc-s1 (>= 3.0)",
    "libstdc++6 (>= 12)",
    "libssl3 (>= 3.0.0)",
    "zlib1g (>= 1:1.2.0)",
    "libglib2.0-0 (>= 2.74.0)",
    "libgtk-3-0 (>= 3.24.0)",
    "libxml2 (>= 2.9.14)",
    "libcurl4 (>= 7.16.2)",
    "libsystemd0",
    "libzstd1 (>= 1.5.2)",
    "liblzma5 (>= 5.1.1alpha+20120614)",
    "libbz2-1.0",
    "libpcre2-8-0 (>= 10.22)",
    "libsqlite3-0 (>= 3.7.15)",
    "libffi8 (>= 3.4)",
    "libexpat1 (>= 2.1~beta3)",
    "libuuid1 (>= 2.16)",
    "libselinux1 (>= 3.1~)",
    "libjpeg62-turbo (>= 1.3.1)",
    "libpng16-16 (>= 1.6.2-1)",
    "libfreetype6 (>= 2.2.1)",
    "libx11-6",
    "libqt5core5a (>= 5.15.1)",
    "libcairo2 (>= 1.10.0)",
    "libdbus-1-3 (>= 1.9.14)",
];

const DEV_LIBS: &[&str] = &[
    "libssl-dev",
    "zlib1g-dev",
    "libglib2.0-dev (>= 2.74)",
    "libxml2-dev",
    "pkg-config",
    "libcurl4-openssl-dev | libcurl-dev",
    "libzstd-dev",
];

const ALTERNATIVES: &[&str] = &[
    "default-mta | mail-transport-agent",
    "debconf (>= 0.5) | debconf-2.0",
    "adduser",
    "python3-gi | python3-pyqt5",
    "www-browser | x-www-browser",
    "default-jre | java-runtime",
    "libjs-jquery",
    "sensible-utils",
    "lsb-base (>= 3.0-6)",
    "fonts-dejavu-core | ttf-bitstream-vera",
];

const ADJECTIVES: &[&str] = &[
    "fast",
    "lightweight",
    "portable",
    "extensible",
    "modular",
    "simple",
    "flexible",
    "secure",
    "generic",
    "high-level",
    "low-level",
    "asynchronous",
    "embeddable",
    "cross-platform",
];

const NOUNS: &[&str] = &[
    "parser",
    "compression",
    "networking",
    "image",
    "audio",
    "XML",
    "JSON",
    "graph",
    "cryptography",
    "database",
    "terminal",
    "font rendering",
    "scheduling",
    "configuration",
    "logging",
    "HTTP",
];

const TOOL_NOUNS: &[&str] = &[
    "tool", "utility", "daemon", "viewer", "editor", "server", "client", "game",
];

const FIRST_NAMES: &[&str] = &[
    "Anna", "Bastian", "Chen", "Dmitri", "Elena", "Felix", "Gaurav", "Hanna", "Ines", "Jonas",
    "Kaito", "Lena", "Marco", "Nadia", "Olav", "Priya", "Rafael", "Sofia", "Tomasz", "Yuki",
];

const LAST_NAMES: &[&str] = &[
    "Andersen",
    "Bauer",
    "Costa",
    "Dubois",
    "Eriksson",
    "Fischer",
    "Garcia",
    "Horvath",
    "Ivanov",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Rossi",
    "Schmidt",
];

const PROSE_WORDS: &[&str] = &[
    "the",
    "library",
    "provides",
    "a",
    "set",
    "of",
    "functions",
    "for",
    "handling",
    "data",
    "and",
    "it",
    "is",
    "designed",
    "to",
    "be",
    "fast",
    "small",
    "with",
    "support",
    "multiple",
    "formats",
    "including",
    "streaming",
    "interfaces",
    "applications",
    "can",
    "use",
    "this",
    "package",
    "in",
    "order",
    "convert",
    "between",
    "representations",
    "without",
    "loss",
    "precision",
    "API",
    "stable",
    "thread-safe",
    "implementation",
    "features",
    "plugins",
    "command-line",
    "options",
    "configuration",
    "files",
    "users",
    "may",
    "also",
    "extend",
    "scripts",
    "written",
    "Python",
    "permission",
    "hereby",
    "granted",
    "free",
    "charge",
    "any",
    "person",
    "obtaining",
    "copy",
    "software",
    "warranty",
    "merchantability",
    "fitness",
    "particular",
    "purpose",
];

const STEM_WORDS: &[&str] = &[
    "gtk", "xml", "yaml", "curl", "ssh", "pixel", "audio", "font", "glib", "crypt", "zip", "json",
    "mesa", "vulkan", "cairo", "pango", "qt", "kde", "gnome", "net", "http", "sql", "lite", "tiny",
    "fast", "micro", "open", "free", "png", "jpeg", "tiff", "webp", "opus", "vorbis", "flac",
    "ogg", "alsa", "pulse", "pipe", "wire", "dbus", "udev", "usb", "blue", "tooth", "wifi", "mqtt",
    "grpc", "proto", "buf", "snappy", "brotli", "zstd", "lz", "archive", "tar", "cpio", "rpm",
    "apt", "sane", "cups", "print", "scan", "ocr", "tess", "math", "num", "sci", "stat", "plot",
    "chart", "geo", "map", "tile", "osm", "gps", "time", "date", "cron", "log", "trace", "perf",
    "bench", "test", "mock", "spec", "lint", "fmt", "parse", "lex", "yacc", "bison", "flex",
    "regex", "glob", "path", "file", "disk", "raid", "lvm", "mount", "fuse", "nfs", "smb", "ftp",
    "mail", "imap", "smtp", "pop", "news", "feed", "rss", "atom", "web", "kit", "view", "term",
    "shell", "edit", "vim", "text", "word", "spell", "dict", "lang", "intl", "icu", "uni", "code",
    "char", "set", "color", "theme", "icon", "cursor", "window", "desk", "panel", "menu", "dock",
    "tray", "notify", "event", "loop", "async", "thread", "pool", "queue", "cache", "store", "key",
    "value", "hash", "tree", "graph", "node", "edge", "mesh", "grid", "cell", "sheet", "doc",
    "page", "pdf", "svg", "ps", "tex", "bib", "cite", "ref", "link", "url", "uri", "mime", "magic",
    "type", "shape", "draw", "paint", "brush", "canvas", "layer", "mask", "blend", "filter",
    "effect", "video", "codec", "stream", "cast", "radio", "tune", "midi", "synth", "drum", "beat",
    "game", "chess", "card", "puzzle", "maze", "robot", "sensor", "serial", "modbus", "can", "spi",
    "gpio", "led", "lcd",
];
