"""An announcement's subject and body are plain text: markup in them reaches the e-mail's HTML part
escaped and its plain part and Subject header as written; a subject that cannot be a header line
(a line break in it) is refused when the announcement is sent, not by every recipient's e-mail."""

import uuid

import grpc
import pytest
from notifications_support import caller_metadata, emails_to, set_preferences

from kit.grpc_client import error_from_rpc
from reserva.notifications.v1 import notifications_pb2 as pb

AGENT = caller_metadata(str(uuid.uuid4()), "agent")
SUBJECT = "<img src=x onerror=alert(1)> Tonight & tomorrow"
BODY = 'Maintenance from 02:00; <a href="https://evil.example">log in</a> & see.'


async def test_markup_in_an_announcement_arrives_escaped_in_html_and_verbatim_in_plain_text(stub, smtp_sink):
    user = str(uuid.uuid4())
    address = f"markup-{user[:8]}@example.com"
    await set_preferences(stub, user, ["email"], email=address)
    await stub.SendAnnouncement(
        pb.SendAnnouncementRequest(
            request_id=str(uuid.uuid4()), subject=SUBJECT, body=BODY, filter=pb.AnnouncementFilter(user_ids=[user])
        ),
        metadata=AGENT,
    )

    [message] = await emails_to(smtp_sink, address)
    assert message["Subject"] == SUBJECT
    assert BODY in message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "<h1>&lt;img src=x onerror=alert(1)&gt; Tonight &amp; tomorrow</h1>" in html
    assert "&lt;a href=&#34;https://evil.example&#34;&gt;log in&lt;/a&gt; &amp; see." in html
    assert "<img" not in html and "<a " not in html


@pytest.mark.parametrize("line_break", ["\n", "\r", "\r\n", "\u2028", "\u2029", "\x85"])
async def test_a_subject_with_a_line_break_is_refused(stub, line_break):
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.SendAnnouncement(
            pb.SendAnnouncementRequest(
                request_id=str(uuid.uuid4()),
                subject=f"Maintenance{line_break}tonight",
                body="b",
                filter=pb.AnnouncementFilter(user_ids=[str(uuid.uuid4())]),  # nobody, should the old code take it
            ),
            metadata=AGENT,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    error = error_from_rpc(refused.value)
    assert error.reason == "INVALID_SUBJECT" and "line break" in refused.value.details()
