//! Readers: plain (and gzip), IWSLT train.tags, IWSLT XML and WMT SGML,
//! checked against the real release files where they exist.

mod data_support;

use std::io::Write;

use data_support::{lines_of, pair_files, shared, write};
use flate2::write::GzEncoder;
use flate2::Compression;
use training::data::readers::sgml::{collapse_whitespace, unescape_xml};
use training::data::{CorpusSpec, Format, PairReader, RawPairs, ReadOptions, TagLines};

fn texts(raw: &RawPairs) -> (Vec<String>, Vec<String>) {
    (
        raw.src.iter().map(str::to_owned).collect(),
        raw.tgt.iter().map(str::to_owned).collect(),
    )
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn iwslt14_xml_release_reproduces_fairseq_test_set() {
    let dir = shared("iwslt14");
    let xml = dir.join("xml");
    let mut spec: Option<CorpusSpec> = None;
    // fairseq's order of the five dev/test sets.
    for set in [
        "TED.dev2010",
        "TEDX.dev2012",
        "TED.tst2010",
        "TED.tst2011",
        "TED.tst2012",
    ] {
        let de = xml.join(format!("IWSLT14.{set}.de-en.de.xml"));
        let en = xml.join(format!("IWSLT14.{set}.de-en.en.xml"));
        assert_eq!(Format::detect(&de), Format::IwsltXml);
        spec = Some(match spec {
            None => CorpusSpec::new(de, en),
            Some(s) => s.then(de, en),
        });
    }
    let spec = spec.unwrap();
    let (raw, report) = RawPairs::read(&spec, &ReadOptions::default()).unwrap();
    let (de, en) = texts(&raw);
    let want_de = lines_of(&dir.join("test.de"));
    let want_en = lines_of(&dir.join("test.en"));
    assert_eq!(de.len(), 6750);
    for (i, (got, want)) in de.iter().zip(&want_de).enumerate() {
        assert_eq!(got, want, "German line {}", i + 1);
    }
    for (i, (got, want)) in en.iter().zip(&want_en).enumerate() {
        assert_eq!(got, want, "English line {}", i + 1);
    }
    assert_eq!((de.len(), en.len()), (want_de.len(), want_en.len()));
    assert_eq!(report.pairs_seen, 6750);
    assert_eq!(report.pairs_kept, 6750);
    assert_eq!(report.total_skipped(), 0);

    // Origins point at the real lines: the first seg of dev2010 is on
    // line 10 of both files, and the first pair of TEDX.dev2012 (pair 887)
    // belongs to part 1.
    let first = raw.locate(0, training::data::Side::Source);
    assert!(first.path.ends_with("IWSLT14.TED.dev2010.de-en.de.xml"));
    assert_eq!(first.line, 10);
    assert_eq!(raw.origins[887].part, 1);
    assert_eq!(raw.origins[887].number, 887);
    let line = std::fs::read_to_string(&spec.parts[1].tgt)
        .unwrap()
        .lines()
        .nth(raw.origins[887].tgt_line as usize - 1)
        .unwrap()
        .to_owned();
    assert!(line.starts_with("<seg id=\"1\">"), "{line}");
    assert!(
        collapse_whitespace(&line).contains(en[887].as_str()),
        "{line}"
    );
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn wmt14_sgml_reproduces_newstest2014() {
    let dir = shared("wmt14");
    let sgm = dir.join("sgm");
    let want_de = lines_of(&dir.join("test.de"));
    let want_en = lines_of(&dir.join("test.en"));
    // Both directions' SGML files hold the same text.
    for (de, en) in [
        (
            "newstest2014-deen-src.de.sgm",
            "newstest2014-deen-ref.en.sgm",
        ),
        (
            "newstest2014-deen-ref.de.sgm",
            "newstest2014-deen-src.en.sgm",
        ),
    ] {
        let spec = CorpusSpec::new(sgm.join(de), sgm.join(en));
        assert_eq!(Format::detect(&spec.parts[0].src), Format::WmtSgml);
        let (raw, report) = RawPairs::read(&spec, &ReadOptions::default()).unwrap();
        let (got_de, got_en) = texts(&raw);
        assert_eq!(got_de, want_de, "{de}");
        assert_eq!(got_en, want_en, "{en}");
        assert_eq!(report.pairs_kept, 3003);
    }
    // The raw `&` of "Standard & Poor's" survives (it is not an entity).
    assert!(want_de.iter().any(|l| l.contains("Standard & Poor's")));
}

#[test]
fn plain_pairs_keep_alignment_and_line_numbers() {
    let (_dir, src, tgt) = pair_files(
        ("t.de", "ein Haus\r\nzwei  Häuser \ndrei\n"),
        ("t.en", "a house\r\ntwo houses\nthree"),
    );
    let (raw, report) =
        RawPairs::read(&CorpusSpec::new(&src, &tgt), &ReadOptions::default()).unwrap();
    assert_eq!(raw.len(), 3);
    // CR of CRLF removed; inner and trailing spaces of plain text kept.
    assert_eq!(raw.get(0), ("ein Haus", "a house"));
    assert_eq!(raw.get(1), ("zwei  Häuser ", "two houses"));
    assert_eq!(raw.get(2), ("drei", "three"));
    assert_eq!(raw.origins[2].src_line, 3);
    assert_eq!(raw.origins[2].tgt_line, 3);
    assert_eq!(report.pairs_seen, 3);
}

#[test]
#[ignore = "needs ../shared/data (the project's corpora)"]
fn gzip_round_trip_by_magic_bytes_and_prefix() {
    let m30k = shared("multi30k");
    let de: Vec<String> = lines_of(&m30k.join("valid.de"));
    let en: Vec<String> = lines_of(&m30k.join("valid.en"));
    let dir = tempfile::tempdir().unwrap();
    // Two gzip members concatenated (as `cat a.gz b.gz` makes).
    let half = de.len() / 2;
    let mut bytes = Vec::new();
    for part in [&de[..half], &de[half..]] {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        for l in part {
            writeln!(enc, "{l}").unwrap();
        }
        bytes.extend(enc.finish().unwrap());
    }
    write(dir.path(), "valid.de.gz", &bytes);
    write(dir.path(), "valid.en", en.join("\n") + "\n");
    let spec = CorpusSpec::prefix(dir.path().join("valid"), "de", "en");
    assert!(spec.parts[0].src.to_string_lossy().ends_with("valid.de.gz"));
    assert!(spec.parts[0].tgt.to_string_lossy().ends_with("valid.en"));
    let (raw, _) = RawPairs::read(&spec, &ReadOptions::default()).unwrap();
    let (got_de, got_en) = texts(&raw);
    assert_eq!(got_de, de);
    assert_eq!(got_en, en);

    // Magic bytes decide, not the name: a gzip file without `.gz` reads too.
    let renamed = write(dir.path(), "plainname.de", &bytes);
    let (raw2, _) = RawPairs::read(
        &CorpusSpec::new(renamed, dir.path().join("valid.en")),
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!(raw2.src, raw.src);
}

/// A `train.tags` pair shaped like the IWSLT release: metadata lines per
/// talk, transcript lines in between, some with stray whitespace.
fn tags_fixture(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let de = "\
<doc docid=\"1\" genre=\"lectures\">
<url>http://www.ted.com/talks/lang/de/al_gore_on_averting_climate_crisis.html</url>
<keywords>talks, alternative energy, climate change</keywords>
<speaker>Al Gore</speaker>
<talkid>1</talkid>
<title>Al Gore über die Abwendung der Klimakatastrophe</title>
<description>TED Talk Subtitles and Transcript: Mit dem gleichen Humor</description>
<reviewer href=\"http://www.ted.com/profiles/1\">Jane Doe</reviewer>
<translator href=\"http://www.ted.com/profiles/2\">John Roe</translator>
Vielen Dank, Chris.
  Es ist mir wirklich eine Ehre,   zweimal auf dieser Bühne zu stehen.
Ich bin wirklich begeistert.
</doc>
<doc docid=\"2\" genre=\"lectures\">
<url>http://www.ted.com/talks/lang/de/david_pogue_says_simplicity_sells.html</url>
<keywords>talks, simplicity, technology</keywords>
<speaker>David Pogue</speaker>
<talkid>2</talkid>
<title>David Pogue: Einfachheit verkauft sich</title>
<description>TED Talk Subtitles and Transcript: Der Kolumnist David Pogue</description>
Hallo, ich bin David Pogue.
</doc>
";
    let en = "\
<doc docid=\"1\" genre=\"lectures\">
<url>http://www.ted.com/talks/al_gore_on_averting_climate_crisis.html</url>
<keywords>talks, alternative energy, climate change, culture</keywords>
<speaker>Al Gore</speaker>
<talkid>1</talkid>
<title>Al Gore: Averting the climate crisis</title>
<description>TED Talk Subtitles and Transcript: With the same humor</description>
Thank you so much, Chris.
And it's truly a great honor to have the opportunity to come to this stage twice;
I'm extremely grateful.
</doc>
<doc docid=\"2\" genre=\"lectures\">
<url>http://www.ted.com/talks/david_pogue_says_simplicity_sells.html</url>
<keywords>talks, simplicity, technology</keywords>
<speaker>David Pogue</speaker>
<talkid>2</talkid>
<title>David Pogue: Simplicity sells</title>
<description>TED Talk Subtitles and Transcript: New York Times columnist David Pogue</description>
Hello, I'm David Pogue.
</doc>
";
    (
        write(dir, "train.tags.de-en.de", de),
        write(dir, "train.tags.de-en.en", en),
    )
}

#[test]
fn train_tags_drop_metadata_and_keep_alignment() {
    let dir = tempfile::tempdir().unwrap();
    let (de, en) = tags_fixture(dir.path());
    assert_eq!(Format::detect(&de), Format::IwsltTags);
    let (raw, report) =
        RawPairs::read(&CorpusSpec::new(&de, &en), &ReadOptions::default()).unwrap();
    let (got_de, got_en) = texts(&raw);
    assert_eq!(
        got_de,
        [
            "Vielen Dank, Chris.",
            "Es ist mir wirklich eine Ehre, zweimal auf dieser Bühne zu stehen.",
            "Ich bin wirklich begeistert.",
            "Hallo, ich bin David Pogue.",
        ]
    );
    assert_eq!(
        got_en[1],
        "And it's truly a great honor to have the opportunity to come to this stage twice;"
    );
    assert_eq!(got_en[3], "Hello, I'm David Pogue.");
    assert_eq!(report.pairs_seen, 4);
    // Line numbers differ per side (the German file has reviewer lines).
    assert_eq!(raw.origins[0].src_line, 10);
    assert_eq!(raw.origins[0].tgt_line, 8);
    assert_eq!(raw.origins[3].src_line, 21);
    assert_eq!(raw.origins[3].tgt_line, 19);
}

#[test]
fn train_tags_fairseq_policy_keeps_titles_and_descriptions() {
    let dir = tempfile::tempdir().unwrap();
    let (de, en) = tags_fixture(dir.path());
    let opts = ReadOptions {
        tag_lines: TagLines::Fairseq,
        ..Default::default()
    };
    let (raw, _) = RawPairs::read(&CorpusSpec::new(&de, &en), &opts).unwrap();
    let (got_de, got_en) = texts(&raw);
    assert_eq!(got_de.len(), 8);
    assert_eq!(got_de[0], "Al Gore über die Abwendung der Klimakatastrophe");
    assert_eq!(got_en[0], "Al Gore: Averting the climate crisis");
    assert_eq!(
        got_en[1],
        "TED Talk Subtitles and Transcript: With the same humor"
    );
    assert_eq!(got_de[2], "Vielen Dank, Chris.");
    assert_eq!(got_en[7], "Hello, I'm David Pogue.");
    assert!(got_de.iter().chain(&got_en).all(|l| !l.contains('<')));
}

#[test]
fn pair_reader_streams_several_parts() {
    let (dir, a, b) = pair_files(("a.de", "eins\nzwei\n"), ("a.en", "one\ntwo\n"));
    let c = write(dir.path(), "b.de", "drei\n");
    let d = write(dir.path(), "b.en", "three\n");
    let spec = CorpusSpec::new(a, b).then(c, d);
    let mut reader = PairReader::open(&spec, &ReadOptions::default()).unwrap();
    let pairs: Vec<_> = reader.by_ref().map(|p| p.unwrap()).collect();
    assert_eq!(pairs.len(), 3);
    assert_eq!(
        (pairs[2].src.as_str(), pairs[2].tgt.as_str()),
        ("drei", "three")
    );
    assert_eq!(pairs[2].origin.part, 1);
    assert_eq!(pairs[2].origin.src_line, 1);
    assert_eq!(pairs[2].origin.number, 2);
    assert_eq!(reader.report().pairs_kept, 3);
}

#[test]
fn segment_lines_parse_ids_entities_and_whitespace() {
    let (_dir, src, tgt) = pair_files(
        (
            "x.de.sgm",
            "<srcset setid=\"t\">\n<doc docid=\"d\">\n<seg id=1>  A &amp;lt; B   &amp; C &#233;  </seg>\n<segment>not a seg</segment>\n<seg id='2'>x &quot;y&quot; &apos;z&apos; & w</seg>\n</doc>\n",
        ),
        (
            "x.en.sgm",
            "<refset>\n<doc docid=\"d\">\n<seg id=\"1\">one</seg>\n<seg id=\"2\">two</seg>\n</doc>\n",
        ),
    );
    let (raw, _) = RawPairs::read(&CorpusSpec::new(src, tgt), &ReadOptions::default()).unwrap();
    assert_eq!(raw.len(), 2);
    assert_eq!(raw.get(0).0, "A &lt; B & C é");
    assert_eq!(raw.get(1).0, "x \"y\" 'z' & w");
    assert_eq!(raw.origins[1].src_line, 5);
}

#[test]
fn unescape_and_collapse_helpers() {
    assert_eq!(
        unescape_xml("a &lt;b&gt; &amp;amp; &foo; &#x41;&#66;"),
        "a <b> &amp; &foo; AB"
    );
    assert_eq!(unescape_xml("AT&T"), "AT&T");
    assert_eq!(collapse_whitespace(" a \t b\u{a0}c  "), "a b c");
}

#[test]
fn format_detection_by_name() {
    use std::path::Path;
    assert_eq!(
        Format::detect(Path::new("d/train.tags.de-en.de.gz")),
        Format::IwsltTags
    );
    assert_eq!(
        Format::detect(Path::new("IWSLT14.TED.tst2010.de-en.en.xml")),
        Format::IwsltXml
    );
    assert_eq!(
        Format::detect(Path::new("newstest2014-deen-src.de.sgm")),
        Format::WmtSgml
    );
    assert_eq!(Format::detect(Path::new("train.de.gz")), Format::Plain);
    assert_eq!(Format::detect(Path::new("train.en")), Format::Plain);
}
