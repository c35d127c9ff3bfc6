"""Every command of RFC 3501/9051 and the extensions, parsed whole, byte by byte and with
trailing bytes left untouched."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from imap_helpers import command, one, three_ways

from merpati.wire.imap import (
    ALLOWED,
    STAR,
    Append,
    AppendMessage,
    Authenticate,
    Capability,
    Check,
    Close,
    Command,
    Compress,
    Copy,
    Create,
    Delete,
    Enable,
    Examine,
    Expunge,
    Fetch,
    FetchAttr,
    FetchBinary,
    FetchBinarySize,
    FetchBody,
    FetchPreview,
    GetQuota,
    GetQuotaRoot,
    Id,
    Idle,
    List,
    Login,
    Logout,
    Lsub,
    Move,
    Namespace,
    Noop,
    ProtocolError,
    QresyncParams,
    Rename,
    Search,
    SearchAge,
    SearchAnd,
    SearchDate,
    SearchHeader,
    SearchKeyword,
    SearchModseq,
    SearchNot,
    SearchOr,
    SearchSeq,
    SearchSimple,
    SearchSize,
    SearchText,
    SearchUid,
    Section,
    Select,
    SequenceSet,
    SetQuota,
    Sort,
    SortCriterion,
    StartTls,
    State,
    Status,
    Store,
    StoreMode,
    Subscribe,
    Thread,
    UidExpunge,
    Unselect,
    Unsubscribe,
)
from merpati.wire.imap import commands as c


def S(text: str) -> SequenceSet:
    return SequenceSet.parse(text)


def A(*keys: object) -> SearchAnd:
    return SearchAnd(tuple(keys))  # type: ignore[arg-type]


PST = timezone(timedelta(hours=-8))

CASES: list[tuple[bytes, object]] = [
    (b"a1 CAPABILITY", Capability()),
    (b"a1 capability", Capability()),
    (b"a NOOP", Noop()),
    (b"a LOGOUT", Logout()),
    (b"a AUTHENTICATE plain", Authenticate("PLAIN", None)),
    (b"a AUTHENTICATE PLAIN =", Authenticate("PLAIN", b"")),
    (b"a AUTHENTICATE PLAIN AHVzZXIAcGFzcw==", Authenticate("PLAIN", b"\0user\0pass")),
    (b"a LOGIN user pass", Login("user", "pass")),
    (b'a LOGIN "fred foo" "p\\"w\\\\"', Login("fred foo", 'p"w\\')),
    (b"a LOGIN {4}\r\nuser {4}\r\npass", Login("user", "pass")),
    (b"a LOGIN {4+}\r\nuser {5+}\r\np\xc3\xa4ss", Login("user", "p\u00e4ss")),
    (b"a LOGIN us]er pass", Login("us]er", "pass")),
    (b"a ENABLE CONDSTORE qresync", Enable(("CONDSTORE", "QRESYNC"))),
    (b"a ENABLE UTF8=ACCEPT", Enable(("UTF8=ACCEPT",))),
    (b"a SELECT INBOX", Select("INBOX")),
    (b"a SELECT inBox", Select("INBOX")),
    (b'a SELECT "Entw&APw-rfe"', Select("Entw\u00fcrfe")),
    (b"a SELECT INBOX (CONDSTORE)", Select("INBOX", condstore=True)),
    (b"a EXAMINE Sent", Examine("Sent")),
    (b"A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))",
     Select("INBOX", qresync=QresyncParams(67890007, 20050715194045000, S("41,43:211,214:541")))),
    (b"B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 "
     b"15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997)))",
     Select("INBOX", qresync=QresyncParams(
         67890007, 90060115194045000, S("1:29997"),
         (S("5000,7500,9000,9990:9999"),
          S("15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997"))))),
    (b"a SELECT INBOX (QRESYNC (1 2 (1:3 4:6)))",
     Select("INBOX", qresync=QresyncParams(1, 2, None, (S("1:3"), S("4:6"))))),
    (b"a CREATE owatagusiam/", Create("owatagusiam/")),
    (b"a CREATE MySpecialArchive (USE (\\Archive))", Create("MySpecialArchive", ("\\Archive",))),
    (b"a DELETE foo", Delete("foo")),
    (b"a RENAME INBOX old-mail", Rename("INBOX", "old-mail")),
    (b'a RENAME "a b" {3}\r\nc d', Rename("a b", "c d")),
    (b"a SUBSCRIBE #news.comp.mail.mime", Subscribe("#news.comp.mail.mime")),
    (b"a UNSUBSCRIBE foo", Unsubscribe("foo")),
    (b'a LIST "" ""', List("", ("",))),
    (b'a LIST "" *', List("", ("*",))),
    (b"a LIST ~/Mail/ %", List("~/Mail/", ("%",))),
    (b'a LIST "" "foo/*"', List("", ("foo/*",))),
    (b'a LIST (SUBSCRIBED RECURSIVEMATCH) "" "*" RETURN (CHILDREN)',
     List("", ("*",), frozenset({"SUBSCRIBED", "RECURSIVEMATCH"}), frozenset({"CHILDREN"}), None, True)),
    (b'a LIST "" (INBOX Drafts "Sent/%") RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN SIZE))',
     List("", ("INBOX", "Drafts", "Sent/%"), frozenset(), frozenset({"SPECIAL-USE"}),
          ("MESSAGES", "UNSEEN", "SIZE"), True)),
    (b'a LIST () "" % RETURN ()', List("", ("%",), frozenset(), frozenset(), None, True)),
    (b'a LSUB "#news." "comp.mail.*"', Lsub("#news.", "comp.mail.*")),
    (b"a NAMESPACE", Namespace()),
    (b"a STATUS blurdybloop (UIDNEXT MESSAGES)", Status("blurdybloop", ("UIDNEXT", "MESSAGES"))),
    (b"a STATUS INBOX (messages recent uidvalidity unseen deleted size highestmodseq appendlimit)",
     Status("INBOX", ("MESSAGES", "RECENT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE",
                      "HIGHESTMODSEQ", "APPENDLIMIT"))),
    (b"a APPEND saved-messages (\\Seen) {5}\r\nhello",
     Append("saved-messages", (AppendMessage(("\\Seen",), None, 5, b"hello"),))),
    (b'a APPEND INBOX " 7-Feb-1994 21:52:25 -0800" {3+}\r\nabc',
     Append("INBOX", (AppendMessage((), datetime(1994, 2, 7, 21, 52, 25, tzinfo=PST), 3, b"abc"),))),
    (b'a APPEND INBOX (\\Seen $Junk) "17-Jul-1996 02:44:25 +0000" {0}\r\n',
     Append("INBOX", (AppendMessage(("\\Seen", "$Junk"),
                                    datetime(1996, 7, 17, 2, 44, 25, tzinfo=timezone.utc), 0, b""),))),
    (b"a APPEND {5}\r\nINBOX {2}\r\nhi (\\Draft) {3}\r\nabc ~{3}\r\na\0b UTF8 (~{2+}\r\n\xc3\xa4)",
     Append("INBOX", (AppendMessage((), None, 2, b"hi"), AppendMessage(("\\Draft",), None, 3, b"abc"),
                      AppendMessage((), None, 3, b"a\0b", binary=True),
                      AppendMessage((), None, 2, b"\xc3\xa4", binary=True, utf8=True)))),
    (b"a IDLE", Idle()),
    (b"a CHECK", Check()),
    (b"a CLOSE", Close()),
    (b"a UNSELECT", Unselect()),
    (b"a EXPUNGE", Expunge()),
    (b"a UID EXPUNGE 3000:3002", UidExpunge(S("3000:3002"))),
    (b"a uid expunge $", UidExpunge(SequenceSet((), True))),
    (b"a SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"",
     Search(A(SearchSimple("FLAGGED"), SearchDate("INTERNAL", "SINCE", date(1994, 2, 1)),
              SearchNot(SearchText("FROM", "Smith"))))),
    (b"a SEARCH TEXT \"string not in mailbox\"", Search(A(SearchText("TEXT", "string not in mailbox")))),
    (b"a SEARCH CHARSET UTF-8 TEXT {6}\r\nXX\xe2\x82\xacY",
     Search(A(SearchText("TEXT", "XX\u20acY")), "UTF-8")),
    (b"a UID SEARCH 1:100 UID 443:557", Search(A(SearchSeq(S("1:100")), SearchUid(S("443:557"))), uid=True)),
    (b"a SEARCH RETURN (MIN MAX COUNT) UNSEEN",
     Search(A(SearchSimple("UNSEEN")), None, frozenset({"MIN", "MAX", "COUNT"}))),
    (b"a SEARCH RETURN () UNDELETED", Search(A(SearchSimple("UNDELETED")), None, frozenset({"ALL"}))),
    (b"a UID SEARCH RETURN (SAVE) SEEN", Search(A(SearchSimple("SEEN")), None, frozenset({"SAVE"}), True)),
    (b"a SEARCH $ SMALLER 4096", Search(A(SearchSeq(SequenceSet((), True)), SearchSize("SMALLER", 4096)))),
    (b"a SEARCH OR (SEEN FLAGGED) NOT (KEYWORD $Junk) UNKEYWORD x",
     Search(A(SearchOr(A(SearchSimple("SEEN"), SearchSimple("FLAGGED")),
                       SearchNot(A(SearchKeyword("$Junk", True)))),
              SearchKeyword("x", False)))),
    (b"a SEARCH ALL ANSWERED BCC b BEFORE 01-Jan-2000 BODY x CC c DELETED DRAFT FLAGGED FROM f "
     b"HEADER X-Foo \"\" KEYWORD k LARGER 5 NEW OLD ON 2-Mar-2001 RECENT SEEN SENTBEFORE 1-Jan-2000 "
     b"SENTON 1-Jan-2000 SENTSINCE \"1-Jan-2000\" SMALLER 9 SUBJECT s TEXT t TO t2 UID 1,2 "
     b"UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNKEYWORD k2 UNSEEN 2:* "
     b"SAVEDBEFORE 1-Jan-2000 SAVEDON 1-Jan-2000 SAVEDSINCE 1-Jan-2000 SAVEDATESUPPORTED "
     b"OLDER 60 YOUNGER 30 MODSEQ 5",
     Search(A(
         SearchSimple("ALL"), SearchSimple("ANSWERED"), SearchText("BCC", "b"),
         SearchDate("INTERNAL", "BEFORE", date(2000, 1, 1)), SearchText("BODY", "x"),
         SearchText("CC", "c"), SearchSimple("DELETED"), SearchSimple("DRAFT"), SearchSimple("FLAGGED"),
         SearchText("FROM", "f"), SearchHeader("X-Foo", ""), SearchKeyword("k"), SearchSize("LARGER", 5),
         SearchSimple("NEW"), SearchSimple("OLD"), SearchDate("INTERNAL", "ON", date(2001, 3, 2)),
         SearchSimple("RECENT"), SearchSimple("SEEN"), SearchDate("SENT", "BEFORE", date(2000, 1, 1)),
         SearchDate("SENT", "ON", date(2000, 1, 1)), SearchDate("SENT", "SINCE", date(2000, 1, 1)),
         SearchSize("SMALLER", 9), SearchText("SUBJECT", "s"), SearchText("TEXT", "t"),
         SearchText("TO", "t2"), SearchUid(S("1,2")), SearchSimple("UNANSWERED"),
         SearchSimple("UNDELETED"), SearchSimple("UNDRAFT"), SearchSimple("UNFLAGGED"),
         SearchKeyword("k2", False), SearchSimple("UNSEEN"), SearchSeq(S("2:*")),
         SearchDate("SAVED", "BEFORE", date(2000, 1, 1)), SearchDate("SAVED", "ON", date(2000, 1, 1)),
         SearchDate("SAVED", "SINCE", date(2000, 1, 1)), SearchSimple("SAVEDATESUPPORTED"),
         SearchAge("OLDER", 60), SearchAge("YOUNGER", 30), SearchModseq(5)))),
    (b'a SEARCH MODSEQ "/flags/\\\\draft" all 620162338',
     Search(A(SearchModseq(620162338, "/flags/\\draft", "all")))),
    (b"a SORT (SUBJECT) UTF-8 ALL", Sort((SortCriterion("SUBJECT"),), "UTF-8", A(SearchSimple("ALL")))),
    (b"a UID SORT (REVERSE DATE from) US-ASCII SINCE 1-Feb-1994",
     Sort((SortCriterion("DATE", True), SortCriterion("FROM")), "US-ASCII",
          A(SearchDate("INTERNAL", "SINCE", date(1994, 2, 1))), True)),
    (b"a THREAD ORDEREDSUBJECT UTF-8 SINCE 5-MAR-2000",
     Thread("ORDEREDSUBJECT", "UTF-8", A(SearchDate("INTERNAL", "SINCE", date(2000, 3, 5))))),
    (b"a UID THREAD REFERENCES US-ASCII ALL", Thread("REFERENCES", "US-ASCII", A(SearchSimple("ALL")), True)),
    (b"a FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])",
     Fetch(S("2:4"), (FetchAttr("FLAGS"), FetchBody(Section((), "HEADER.FIELDS", ("DATE", "FROM")))))),
    (b"a FETCH 1 ALL", Fetch(S("1"), tuple(FetchAttr(n) for n in c.FETCH_MACROS["ALL"]), macro="ALL")),
    (b"a FETCH 1 fast", Fetch(S("1"), tuple(FetchAttr(n) for n in c.FETCH_MACROS["FAST"]), macro="FAST")),
    (b"a FETCH 1 FULL", Fetch(S("1"), tuple(FetchAttr(n) for n in c.FETCH_MACROS["FULL"]), macro="FULL")),
    (b"a FETCH * BODY", Fetch(S("*"), (FetchAttr("BODY"),))),
    (b"a FETCH 1 body[]", Fetch(S("1"), (FetchBody(Section()),))),
    (b"a FETCH 1 (ENVELOPE FLAGS INTERNALDATE RFC822 RFC822.HEADER RFC822.TEXT RFC822.SIZE BODY "
     b"BODYSTRUCTURE UID MODSEQ SAVEDATE EMAILID THREADID)",
     Fetch(S("1"), tuple(FetchAttr(n) for n in (
         "ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.TEXT", "RFC822.SIZE",
         "BODY", "BODYSTRUCTURE", "UID", "MODSEQ", "SAVEDATE", "EMAILID", "THREADID")))),
    (b"a FETCH 1 (BODY.PEEK[1.2.HEADER.FIELDS.NOT (x-a \"X-B\")]<10.20> BODY[1.MIME] BODY[2.TEXT] "
     b"BODY[3] BODY[HEADER] BODY[TEXT]<0.0>)",
     Fetch(S("1"), (FetchBody(Section((1, 2), "HEADER.FIELDS.NOT", ("X-A", "X-B")), (10, 20), True),
                    FetchBody(Section((1,), "MIME")), FetchBody(Section((2,), "TEXT")),
                    FetchBody(Section((3,))), FetchBody(Section((), "HEADER")),
                    FetchBody(Section((), "TEXT"), (0, 0))))),
    (b"a FETCH 1 (BINARY[1] BINARY.PEEK[]<0.100> BINARY.SIZE[2.1] PREVIEW PREVIEW (LAZY))",
     Fetch(S("1"), (FetchBinary((1,)), FetchBinary((), (0, 100), True), FetchBinarySize((2, 1)),
                    FetchPreview(), FetchPreview(True)))),
    (b"a UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)",
     Fetch(S("300:500"), (FetchAttr("FLAGS"),), True, 12345, True)),
    (b"a FETCH 1:* (FLAGS) (CHANGEDSINCE 1)", Fetch(S("1:*"), (FetchAttr("FLAGS"),), False, 1)),
    (b"a STORE 2:4 +FLAGS (\\Deleted)", Store(S("2:4"), StoreMode.ADD, ("\\Deleted",))),
    (b"a STORE 1 FLAGS.SILENT ()", Store(S("1"), StoreMode.REPLACE, (), True)),
    (b"a UID STORE 1 -flags \\Seen $Forwarded", Store(S("1"), StoreMode.REMOVE, ("\\Seen", "$Forwarded"),
                                                      False, True)),
    (b"a STORE 7,5,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)",
     Store(S("7,5,9"), StoreMode.ADD, ("\\Deleted",), True, False, 320162338)),
    (b"a STORE $ (UNCHANGEDSINCE 0) FLAGS (x)", Store(SequenceSet((), True), StoreMode.REPLACE, ("x",),
                                                     unchangedsince=0)),
    (b"a COPY 2:4 MEETING", Copy(S("2:4"), "MEETING")),
    (b"a UID COPY 1:* Trash", Copy(S("1:*"), "Trash", True)),
    (b"a MOVE 1 Archive", Move(S("1"), "Archive")),
    (b"a UID MOVE 42 \"Junk\"", Move(S("42"), "Junk", True)),
    (b"a ID NIL", Id(None)),
    (b'a ID ("name" "sodr" "version" "19.34" "vendor" NIL)',
     Id((("name", "sodr"), ("version", "19.34"), ("vendor", None)))),
    (b"a ID ()", Id(())),
    (b"a GETQUOTA \"\"", GetQuota("")),
    (b"a GETQUOTAROOT INBOX", GetQuotaRoot("INBOX")),
    (b"a SETQUOTA \"\" (STORAGE 512 message 1000)", SetQuota("", (("STORAGE", 512), ("MESSAGE", 1000)))),
    (b"a COMPRESS DEFLATE", Compress("DEFLATE")),
    (b"a STARTTLS", StartTls()),
]


@pytest.mark.parametrize(("line", "expected"), CASES, ids=[c[0][:60].decode("latin-1") for c in CASES])
def test_command_three_ways(line: bytes, expected: object) -> None:
    data = line + b"\r\n"
    trailing = not isinstance(expected, StartTls)  # start_tls() drops the buffer by design
    events, _ = three_ways(data, trailing=trailing)
    commands = [e for e in events if isinstance(e, Command)]
    assert len(commands) == 1, events
    assert commands[0].tag in ("a", "a1", "A02", "B04")
    assert commands[0].command == expected


def test_every_command_class_has_a_case() -> None:
    seen = {type(e) for _, e in CASES}
    every = set(ALLOWED[State.SELECTED]) | set(ALLOWED[State.NOT_AUTHENTICATED])
    assert every - seen == set()


def test_bare_lf_line_ending_accepted() -> None:
    assert command(b"a NOOP\n") == Noop()


def test_uid_uppercase_and_tag_chars() -> None:
    ev = one(b"A.1[x]~| uid FETCH 1 UID\r\n")
    assert ev.tag == "A.1[x]~|"
    assert ev.command == Fetch(S("1"), (FetchAttr("UID"),), True)


@pytest.mark.parametrize("line", [
    b"+a NOOP", b"a(b NOOP", b"a*b NOOP", b"a%b NOOP", b'a"b NOOP', b"a{b NOOP", b"a\\b NOOP",
])
def test_bad_tags_are_untagged_bad(line: bytes) -> None:
    ev = one(line + b"\r\n")
    assert isinstance(ev, ProtocolError) and ev.status == "BAD"


@pytest.mark.parametrize("line", [
    b"a FOO", b"a UID NOOP", b"a NOOP x", b"a SELECT", b"a SELECT a b", b"a LOGIN a",
    b"a FETCH 1", b"a FETCH 1 (FLAGS", b"a FETCH 1 BODY[1.]", b"a FETCH 1 BODY[MIME]",
    b"a FETCH 1 BODY[0]", b"a FETCH 1 BODY[HEADER.FIELDS]", b"a FETCH 1 BODY[]<1>", b"a FETCH 1 FOO",
    b"a FETCH 1 FLAGS (VANISHED)", b"a UID FETCH 1 FLAGS (VANISHED)", b"a FETCH 1 FLAGS (CHANGEDSINCE 0)",
    b"a STORE 1 FLAGS", b"a STORE 1 XFLAGS (a)", b"a STORE 1 +FLAGS (\\*)", b"a SEARCH", b"a SEARCH FOO",
    b"a SEARCH BEFORE 32-Jan-2000", b"a SEARCH BEFORE 1-Foo-2000", b"a SEARCH (", b"a SEARCH ()",
    b"a SEARCH LARGER x", b"a SEARCH RETURN (BOGUS) ALL", b"a SORT () UTF-8 ALL", b"a SORT (FOO) UTF-8 ALL",
    b"a SORT (SUBJECT) ALL", b"a STATUS INBOX ()", b"a STATUS INBOX (FOO)", b"a LIST \"\"",
    b'a APPEND INBOX', b'a APPEND INBOX (\\Seen)', b'a APPEND INBOX "bad date" {1}', b"a APPEND INBOX (\\Seen {1}",
    b"a AUTHENTICATE", b"a AUTHENTICATE PLAIN !!!notbase64", b"a AUTHENTICATE PLAIN AHV",
    b"a ENABLE", b"a ID", b"a ID (\"a\")", b"a CREATE x (FOO (a))", b"a SELECT x (FOO)",
    b'a LOGIN "abc', b"a LOGIN \"a\r\" b", b"a COPY 1", b"a SETQUOTA x (STORAGE)", b"a UID EXPUNGE",
    b"a SEARCH UID 1:2:3", b"a SEARCH MODSEQ x", b"a SEARCH OLDER 0",
])
def test_syntax_errors_are_tagged_bad(line: bytes) -> None:
    events, out = three_ways(line + b"\r\n")
    assert len(events) == 1 and isinstance(events[0], ProtocolError), events
    assert events[0].tag == "a" and events[0].status == "BAD"
    assert b"+ " not in out


def test_lone_tag_is_untagged_bad() -> None:
    ev = one(b"a\r\n")
    assert isinstance(ev, ProtocolError) and ev.tag is None


def test_unknown_charset_is_no_badcharset() -> None:
    ev = one(b"a SEARCH CHARSET KOI8-R TEXT x\r\n")
    assert isinstance(ev, ProtocolError)
    assert (ev.status, ev.code) == ("NO", "BADCHARSET (US-ASCII UTF-8)")


def test_invalid_utf8_search_string_is_bad() -> None:
    ev = one(b"a SEARCH CHARSET UTF-8 TEXT \"\xff\xfe\"\r\n")
    assert isinstance(ev, ProtocolError) and ev.status == "BAD"


def test_pipelined_commands_in_order() -> None:
    events, out = three_ways(b"a NOOP\r\nb FETCH 1 FLAGS\r\nc LOGIN {1}\r\nx y\r\nd LOGOUT\r\n")
    assert [e.tag for e in events] == ["a", "b", "c", "d"]
    assert out == b"+ Ready for literal data\r\n"


def test_error_response_formatting() -> None:
    from merpati.wire.imap import ImapServer
    assert ImapServer.error_response(ProtocolError("a", "x")) == b"a BAD x\r\n"
    assert ImapServer.error_response(ProtocolError(None, "x")) == b"* BAD x\r\n"
    assert ImapServer.error_response(ProtocolError("a", "big", "NO", "TOOBIG")) == b"a NO [TOOBIG] big\r\n"


def test_star_constant() -> None:
    assert S("*").ranges == ((STAR, STAR),)
