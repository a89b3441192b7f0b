"""acd.queue_log: Asterisk's line format, field cleaning, concurrent appends, rotation."""
from __future__ import annotations

import os
import threading

from acd.queue_log import QueueLogFile, clean, format_line, member_name, parse_line, seconds


def test_line_format_is_asterisks() -> None:
    # main/logger.c: "%ld|%s|%s|%s|%s|" then the data, whatever the event.
    assert format_line(1366720340, "1366720340.303267", "MYQUEUE", "SIP/8007", "RINGNOANSWER",
                       (1000,)) == "1366720340|1366720340.303267|MYQUEUE|SIP/8007|RINGNOANSWER|1000"
    assert format_line(1772442000.9, "c1", "sales", "NONE", "ENTERQUEUE", ("", "15550001", 1)) \
        == "1772442000|c1|sales|NONE|ENTERQUEUE||15550001|1"


def test_an_event_without_data_ends_with_a_pipe() -> None:
    assert format_line(1772442000, "NONE", "sales", "PJSIP/1001", "UNPAUSE") \
        == "1772442000|NONE|sales|PJSIP/1001|UNPAUSE|"


def test_fields_never_break_the_line() -> None:
    assert clean("a|b\nc\rd") == "a_b c d"
    assert clean(None) == ""
    line = format_line(1, "c|1", "q", "NONE", "ENTERQUEUE", ("", "Bob|Smith\n", 1))
    assert line == "1|c_1|q|NONE|ENTERQUEUE||Bob_Smith |1"
    assert parse_line(line + "\n").data == ("", "Bob_Smith ", "1")


def test_member_name_and_seconds() -> None:
    assert member_name("1001") == "PJSIP/1001"
    assert member_name("Local/1001@agents") == "Local/1001@agents"
    assert [seconds(x) for x in (0, 0.49, 0.5, 2.5, 12.4, -3)] == [0, 0, 1, 3, 12, 0]


def test_parse_line_roundtrip() -> None:
    parsed = parse_line("1772442000|c1|sales|PJSIP/1001|CONNECT|12|cp-agent-c1-1|4\n")
    assert (parsed.epoch, parsed.callid, parsed.queue, parsed.agent, parsed.event) \
        == (1772442000, "c1", "sales", "PJSIP/1001", "CONNECT")
    assert parsed.data == ("12", "cp-agent-c1-1", "4")


def test_file_is_created_with_its_directory_and_appended(tmp_path) -> None:
    path = tmp_path / "state" / "queue_log"
    path.parent.mkdir()
    path.write_text("1|NONE|NONE|NONE|QUEUESTART|\n")     # Asterisk's own lines stay
    log = QueueLogFile(path)
    log.write("2|c1|q|NONE|ENTERQUEUE||1|1")
    # line buffered: on disk before close
    assert path.read_text() == "1|NONE|NONE|NONE|QUEUESTART|\n2|c1|q|NONE|ENTERQUEUE||1|1\n"
    log.close()
    deep = QueueLogFile(tmp_path / "a" / "b" / "queue_log")
    deep.write("3|x|q|NONE|ENTERQUEUE||1|1")
    deep.close()
    assert (tmp_path / "a" / "b" / "queue_log").read_text() == "3|x|q|NONE|ENTERQUEUE||1|1\n"


def test_concurrent_writers_never_interleave(tmp_path) -> None:
    path = tmp_path / "queue_log"
    log = QueueLogFile(path)
    payload = "x" * 300

    def writer(n: int) -> None:
        for i in range(400):
            log.write(format_line(1772442000, f"t{n}-{i}", "q", "NONE", "ENTERQUEUE", ("", payload, i)))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 8 * 400
    assert all(parse_line(line).data[1] == payload for line in lines)
    assert len({parse_line(line).callid for line in lines}) == 8 * 400


def test_reopens_after_rotation_and_after_deletion(tmp_path) -> None:
    path = tmp_path / "queue_log"
    log = QueueLogFile(path)
    log.write("1|a|q|NONE|ENTERQUEUE||1|1")
    os.rename(path, tmp_path / "queue_log.1")                # logrotate's default
    log.write("2|b|q|NONE|ENTERQUEUE||1|1")
    assert (tmp_path / "queue_log.1").read_text() == "1|a|q|NONE|ENTERQUEUE||1|1\n"
    assert path.read_text() == "2|b|q|NONE|ENTERQUEUE||1|1\n"
    path.unlink()
    log.write("3|c|q|NONE|ENTERQUEUE||1|1")
    log.close()
    assert path.read_text() == "3|c|q|NONE|ENTERQUEUE||1|1\n"
