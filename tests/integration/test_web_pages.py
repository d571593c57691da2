"""The recipient's pages after the first visit: an unsubscribed user is told so, not asked
again, and an expired form answers in the recipient's language."""

import re

from sqlalchemy import Engine

from tests.builders import silent_users
from tests.integration.test_web import (
    Site,
    send_winback,
    sent_emails,
    site,  # noqa: F401 - the fixture
    suppressions,
    unsubscribe_link,
)


def test_the_page_says_unsubscribed_instead_of_asking_again(
    engine: Engine,
    site: Site,  # noqa: F811 - the fixture
) -> None:
    silent_users(engine, site.settings, 2)  # s00000 reads zh-CN, s00001 en
    send_winback(engine, site.settings, 2)
    link = {str(m["To"]): unsubscribe_link(m) for m in sent_emails(site.settings)}["s1@example.com"]
    page = site.client.get(link)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None and "Stop receiving" in page.text
    site.client.post(link, data={"csrf": csrf.group(1), "confirm": "yes"})
    assert suppressions(engine) == {("s00001", "email", "unsubscribed")}

    again = site.client.get(link)
    assert again.status_code == 200
    assert "You are unsubscribed" in again.text
    assert 'name="csrf"' not in again.text and "Stop receiving" not in again.text


def test_an_expired_form_is_refused_in_the_recipients_language(
    engine: Engine,
    site: Site,  # noqa: F811 - the fixture
) -> None:
    silent_users(engine, site.settings, 2)
    send_winback(engine, site.settings, 2)
    by_user = {str(m["To"]): unsubscribe_link(m) for m in sent_emails(site.settings)}
    chinese = site.client.post(by_user["s0@example.com"], data={"csrf": "old", "confirm": "yes"})
    assert chinese.status_code == 403
    assert "页面已过期" in chinese.text and 'lang="zh-CN"' in chinese.text
    preferences = by_user["s0@example.com"].replace("/unsubscribe?", "/preferences?")
    refused = site.client.post(preferences, data={"csrf": "old", "channel": ["email"]})
    assert refused.status_code == 403 and "页面已过期" in refused.text
    english = site.client.post(by_user["s1@example.com"], data={"csrf": "old", "confirm": "yes"})
    assert "This page expired" in english.text
    assert suppressions(engine) == set()
