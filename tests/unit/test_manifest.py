import pytest

from s3flow.errors import InputError
from s3flow.manifest import check_delete, parse, read_text
from s3flow.record import ObjectRef


def pairs(text, **options):
    return [(row.line, row.source.uri, row.destination.uri, row.is_prefix)
            for row in parse(text, **options)]


def problems(text, **options):
    with pytest.raises(InputError) as caught:
        parse(text, **options)
    return [(p.line, p.field, p.message) for p in caught.value.problems]


@pytest.mark.parametrize("text", [
    "s3://src-a/k1,s3://dst-b/k2\ns3://src-a/p/,s3://dst-b/q/\n",
    "s3://src-a/k1\ts3://dst-b/k2\ns3://src-a/p/\ts3://dst-b/q/\n",
    "s3://src-a/k1   s3://dst-b/k2\n  s3://src-a/p/ s3://dst-b/q/  \n",
    "source,destination\ns3://src-a/k1,s3://dst-b/k2\n\ns3://src-a/p/,s3://dst-b/q/\n",
])
def test_delimiters_and_header_are_detected(text):
    rows = pairs(text)
    assert [r[1:] for r in rows] == [
        ("s3://src-a/k1", "s3://dst-b/k2", False), ("s3://src-a/p/", "s3://dst-b/q/", True)]


def test_line_numbers_count_header_and_blank_lines():
    rows = pairs("source,destination\n\ns3://src-a/k1,s3://dst-b/k2\n")
    assert rows[0][0] == 3


def test_forced_header_and_no_header():
    text = "s3://src-a/h,s3://dst-b/h\ns3://src-a/k,s3://dst-b/k\n"
    assert [r[1] for r in pairs(text, header=True)] == ["s3://src-a/k"]
    assert problems("src,dst\ns3://src-a/k,s3://dst-b/k\n", header=False)[0][:2] == (1, "source")


def test_destination_prefix_takes_the_source_name():
    assert pairs("s3://src-a/dir/file name.txt,s3://dst-b/into/\n")[0][2] == \
        "s3://dst-b/into/file name.txt"


def test_third_column_is_the_source_version():
    rows = parse("source,destination,version_id\ns3://src-a/k,s3://dst-b/k,3HL4kqtJlcpX\n"
                 "s3://src-a/k,s3://src-a/k,OLDVERSION\ns3://src-a/j,s3://dst-b/j,\n")
    assert [(r.source.version_id, r.source.uri) for r in rows] == [
        ("3HL4kqtJlcpX", "s3://src-a/k?versionId=3HL4kqtJlcpX"),
        ("OLDVERSION", "s3://src-a/k?versionId=OLDVERSION"),  # restores an old version in place
        (None, "s3://src-a/j")]


def test_bucket_root_is_a_prefix_row():
    assert pairs("s3://src-a,s3://dst-b/copy/\n")[0][1:] == ("s3://src-a/", "s3://dst-b/copy/", True)


def test_quoted_fields_keep_delimiters_in_keys():
    rows = pairs('"s3://src-a/a,b.txt","s3://dst-b/a,b.txt"\n')
    assert rows[0][1:3] == ("s3://src-a/a,b.txt", "s3://dst-b/a,b.txt")


@pytest.mark.parametrize("text, line, field, words", [
    ("", None, None, "empty"),
    ("\n\n  \n", None, None, "empty"),
    ("source,destination\n", None, None, "no rows"),
    ("s3://src-a/k\n", 1, "columns", "found 1"),
    ("s3://src-a/k,s3://dst-b/k,v1,extra\n", 1, "columns", "found 4"),
    ("s3://src-a/k,s3://dst-b/k\n1,2,3,4,5,6,7,8,9,10\n", 2, "columns", "found 10"),
    ("s3://src-a/k,https://dst-b/k\n", 1, "destination", "not an s3:// URI"),
    ("s3://src-a/k,s3:///k\n", 1, "destination", "empty bucket name"),
    ("s3://src-a/k,s3://Bad_Bucket!/k\n", 1, "destination", "not a valid bucket name"),
    ("s3://src-a/p/,s3://dst-b/object\n", 1, "destination", "must be a prefix"),
    ("s3://src-a/k,s3://src-a/k\n", 1, "destination", "equals the source"),
    ("s3://src-a/p/,s3://src-a/p/\n", 1, "destination", "equals the source"),
    ("s3://src-a/p/,s3://src-a/p/inner/\n", 1, "destination", "inside its own source prefix"),
    ("s3://src-a/,s3://src-a/copy/\n", 1, "destination", "inside its own source prefix"),
    ("s3://src-a/x,s3://dst-b/k\ns3://src-a/y,s3://dst-b/k\n", 2, "destination", "same destination"),
    ("s3://src-a/p/,s3://dst-b/q/\ns3://src-a/r/,s3://dst-b/q/\n", 2, "destination", "same destination"),
    ("s3://src-a/p/,s3://dst-b/q/\ns3://src-a/r/,s3://dst-b/q/sub/\n", 2, "destination",
     "inside the destination prefix"),
    ("s3://src-a/p/,s3://dst-b/q/\ns3://src-a/x,s3://dst-b/q/x\n", 2, "destination",
     "inside the destination prefix"),
    ("s3://src-a/k,s3://dst-b/k,s3://dst-c/k\n", 1, "version_id", "not a version id"),
    ("s3://src-a/p/,s3://dst-b/p/,3HL4kqtJlcpXroDTDmJ\n", 1, "version_id", "this row is a prefix"),
    ("s3://src-a/" + "k" * 1025 + ",s3://dst-b/k\n", 1, "source", "longer than 1024 bytes"),
])
def test_each_bad_manifest_names_line_and_field(text, line, field, words):
    found = problems(text)
    assert any(p_line == line and p_field == field and words in message
               for p_line, p_field, message in found), found


def test_every_problem_is_reported_not_just_the_first():
    found = problems("s3://src-a/k\nfoo,s3://dst-b/x\ns3://src-a/k,s3://src-a/k\n")
    assert [p[0] for p in found] == [1, 2, 3]


def test_delete_refuses_a_source_inside_its_destination():
    rows = parse("s3://src-a/data/raw/,s3://src-a/data/\n")
    assert "would remove source objects" in check_delete(rows)[0].message
    assert check_delete(parse("s3://src-a/p/,s3://dst-b/p/\n")) == []


def test_read_text_local_file_errors(tmp_path):
    with pytest.raises(InputError, match="cannot read manifest"):
        read_text(str(tmp_path / "missing.csv"), fetch=None)
    binary = tmp_path / "m.bin"
    binary.write_bytes(b"\x00\x01\x02")
    with pytest.raises(InputError, match="not a text file"):
        read_text(str(binary), fetch=None)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("s3://a\xe9".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        read_text(str(latin), fetch=None)


def test_read_text_from_s3_uses_fetch():
    seen = []
    text = read_text("s3://man-bucket/lists/batch.csv",
                     fetch=lambda ref: seen.append(ref) or b"s3://src-a/k,s3://dst-b/k\n")
    assert seen == [ObjectRef("man-bucket", "lists/batch.csv")]
    assert parse(text)[0].source.uri == "s3://src-a/k"
    with pytest.raises(InputError, match="is a prefix"):
        read_text("s3://man-bucket/lists/", fetch=None)


def test_spreadsheet_exports_with_bom_and_crlf(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffsource,destination\r\ns3://src-a/ü k,s3://dst-b/\r\n".encode("utf-8"))
    rows = parse(read_text(str(path), fetch=None))
    assert [(r.line, r.source.uri, r.destination.uri) for r in rows] == [
        (2, "s3://src-a/ü k", "s3://dst-b/ü k")]
