"""What the simulated outlets serve: feeds, article pages, index pages, all as bytes.

Everything here is a pure function of its arguments, so the same article always renders
to the same bytes. Article pages carry the clutter real news sites wrap around a story
(menus, cookie banners, share buttons, newsletter boxes, paywalls, comment forms) so the
text extraction and cleaning stages meet what they meet on the web. The clutter ("chrome")
depends only on the outlet: it is identical on every page of one outlet and differs
between chrome families.

URL scheme (one host, path-prefixed per outlet)::

    /                                         index of outlets and feeds
    /robots.txt
    /{outlet}/                                the outlet's front page
    /{outlet}/feed.xml  or  /{outlet}/atom.xml
    /{outlet}/{yyyy}/{mm}/{article}.html      an article (a PDF for articles with fault "pdf")
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from html import escape
from xml.sax.saxutils import escape as xml_escape

from simulator.corpus import DemoArticle, DemoCorpus, DemoOutlet

TRACKING_QUERY = "utm_source=rss&utm_medium=feed&utm_campaign={campaign}"
PAYWALL_VISIBLE_PARAGRAPHS = 2

# ----------------------------------------------------------------------------- URLs


def feed_path(outlet: DemoOutlet) -> str:
    name = "atom.xml" if outlet.feed_format == "atom" else "feed.xml"
    return f"/{outlet.slug}/{name}"


def homepage_path(outlet: DemoOutlet) -> str:
    return f"/{outlet.slug}/"


def article_path(article: DemoArticle) -> str:
    when = article.published_at
    return f"/{article.outlet}/{when.year:04d}/{when.month:02d}/{article.slug}.html"


def _join(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + path


def feed_url(base_url: str, outlet: DemoOutlet) -> str:
    return _join(base_url, feed_path(outlet))


def homepage_url(base_url: str, outlet: DemoOutlet) -> str:
    return _join(base_url, homepage_path(outlet))


def article_url(base_url: str, article: DemoArticle) -> str:
    """The clean (canonical) URL of an article."""
    return _join(base_url, article_path(article))


def tracked_url(url: str, campaign: str) -> str:
    """The URL as feeds link it: with the tracking parameters a client must strip."""
    separator = "&" if "?" in url else "?"
    return url + separator + TRACKING_QUERY.format(campaign=campaign)


# ----------------------------------------------------------------------------- dates


def rfc822(when: datetime) -> str:
    return format_datetime(when.astimezone(UTC))  # "Wed, 23 Apr 2025 09:30:00 +0000"


def http_date(when: datetime) -> str:
    return format_datetime(when.astimezone(UTC), usegmt=True)  # "... 09:30:00 GMT"


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _human_date(when: datetime) -> str:
    when = when.astimezone(UTC)
    return f"{when.strftime('%B')} {when.day}, {when.year} {when.strftime('%H:%M')} UTC"


# ----------------------------------------------------------------------------- feeds


def _newest_first(articles: Iterable[DemoArticle]) -> list[DemoArticle]:
    return sorted(articles, key=lambda a: (a.published_at, a.slug), reverse=True)


def _content_html(article: DemoArticle) -> str:
    return "".join(f"<p>{escape(p)}</p>" for p in article.paragraphs)


def _feed_updated(articles: Sequence[DemoArticle], fallback: datetime | None) -> datetime:
    if articles:
        return max(a.published_at for a in articles)
    return fallback or datetime(1970, 1, 1, tzinfo=UTC)


def render_feed(
    outlet: DemoOutlet,
    articles: Iterable[DemoArticle],
    base_url: str,
    *,
    malformed: bool = False,
    updated_fallback: datetime | None = None,
) -> bytes:
    """The outlet's RSS 2.0 or Atom 1.0 feed of ``articles``, newest first.

    Item links carry tracking parameters; guid/id is the clean URL. With ``malformed``
    the XML is broken the way real feeds break (a raw ``&`` in titles, the closing tags
    missing) but a tolerant parser still recovers the entries.
    """
    items = _newest_first(a for a in articles if a.outlet == outlet.slug)
    updated = _feed_updated(items, updated_fallback)
    if outlet.feed_format == "atom":
        return _render_atom(outlet, items, base_url, updated, malformed)
    return _render_rss(outlet, items, base_url, updated, malformed)


def _xattr(value: str) -> str:
    return xml_escape(value, {'"': "&quot;"})


def _title_text(text: str, malformed: bool) -> str:
    if malformed:  # the CMS forgot to escape ampersands
        return text.replace("<", "&lt;").replace(">", "&gt;")
    return xml_escape(text)


def _render_rss(
    outlet: DemoOutlet,
    items: list[DemoArticle],
    base_url: str,
    updated: datetime,
    malformed: bool,
) -> bytes:
    chrome = CHROMES[outlet.chrome]
    channel_title = f"{outlet.name} | News & Views" if malformed else xml_escape(outlet.name)
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:atom="http://www.w3.org/2005/Atom">',
        "<channel>",
        f"<title>{channel_title}</title>",
        f"<link>{xml_escape(homepage_url(base_url, outlet))}</link>",
        f"<description>{xml_escape(chrome.tagline)}</description>",
        f"<language>{xml_escape(outlet.language)}</language>",
        f"<lastBuildDate>{rfc822(updated)}</lastBuildDate>",
        f'<atom:link href="{_xattr(feed_url(base_url, outlet))}" rel="self"'
        ' type="application/rss+xml"/>',
        "<generator>OutletCMS 4.2</generator>",
        "<ttl>15</ttl>",
    ]
    for article in items:
        url = article_url(base_url, article)
        lines.append("<item>")
        lines.append(f"<title>{_title_text(article.title, malformed)}</title>")
        lines.append(f"<link>{xml_escape(tracked_url(url, outlet.slug))}</link>")
        lines.append(f'<guid isPermaLink="true">{xml_escape(url)}</guid>')
        lines.append(f"<pubDate>{rfc822(article.published_at)}</pubDate>")
        if article.author:
            lines.append(f"<dc:creator>{xml_escape(article.author)}</dc:creator>")
        lines.append(f"<description>{xml_escape(article.paragraphs[0])}</description>")
        if outlet.feed_content == "full":
            lines.append(f"<content:encoded>{xml_escape(_content_html(article))}</content:encoded>")
        lines.append("</item>")
    if not malformed:
        lines.append("</channel>")
        lines.append("</rss>")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _render_atom(
    outlet: DemoOutlet,
    items: list[DemoArticle],
    base_url: str,
    updated: datetime,
    malformed: bool,
) -> bytes:
    chrome = CHROMES[outlet.chrome]
    home = _xattr(homepage_url(base_url, outlet))
    feed_title = f"{outlet.name} | News & Views" if malformed else xml_escape(outlet.name)
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="{xml_escape(outlet.language)}">',
        f"<title>{feed_title}</title>",
        f"<subtitle>{xml_escape(chrome.tagline)}</subtitle>",
        f"<id>{home}</id>",
        f'<link rel="alternate" type="text/html" href="{home}"/>',
        f'<link rel="self" type="application/atom+xml"'
        f' href="{_xattr(feed_url(base_url, outlet))}"/>',
        f"<updated>{rfc3339(updated)}</updated>",
        f"<author><name>{xml_escape(outlet.name)}</name></author>",
        '<generator uri="https://example.invalid/outletcms" version="4.2">OutletCMS</generator>',
    ]
    for article in items:
        url = article_url(base_url, article)
        lines.append("<entry>")
        lines.append(f'<title type="text">{_title_text(article.title, malformed)}</title>')
        lines.append(
            f'<link rel="alternate" type="text/html"'
            f' href="{_xattr(tracked_url(url, outlet.slug))}"/>'
        )
        lines.append(f"<id>{xml_escape(url)}</id>")
        lines.append(f"<published>{rfc3339(article.published_at)}</published>")
        lines.append(f"<updated>{rfc3339(article.published_at)}</updated>")
        if article.author:
            lines.append(f"<author><name>{xml_escape(article.author)}</name></author>")
        lines.append(f'<summary type="text">{xml_escape(article.paragraphs[0])}</summary>')
        if outlet.feed_content == "full":
            lines.append(f'<content type="html">{xml_escape(_content_html(article))}</content>')
        lines.append("</entry>")
    if not malformed:
        lines.append("</feed>")
    return ("\n".join(lines) + "\n").encode("utf-8")


# ----------------------------------------------------------------------------- chrome


@dataclass(frozen=True)
class Chrome:
    """The fixed furniture of one family of site templates."""

    css: str  # class-name prefix of the template
    tagline: str
    title_separator: str
    sections: tuple[str, ...]
    cookie_text: str
    cookie_buttons: tuple[str, ...]
    share_heading: str
    newsletter_title: str
    newsletter_text: str
    newsletter_button: str
    newsletter_fineprint: str
    footer_links: tuple[str, ...]
    footer_note: str
    follow_line: str
    ad_label: str = ""  # an ad slot between paragraphs
    audio: bool = False  # "Click to start listening" widget
    widgets_in_body: bool = False  # audio widget / share row sit inside the story's body
    comments: bool = False  # "Leave a Reply" form
    protected: bool = False  # copy-protection notice
    paywall: bool = False  # only the first paragraphs are shown
    json_ld: bool = False


SHARE_LABELS = ("Share on Facebook", "Share on X", "WhatsApp", "Copy link")

CHROMES: dict[str, Chrome] = {
    "portal": Chrome(
        css="np",
        tagline="Latest news, analysis and opinion from across the country and the world.",
        title_separator=" | ",
        sections=(
            "Latest",
            "National",
            "World",
            "Politics",
            "Security",
            "Business",
            "Opinion",
            "Sport",
            "Entertainment",
            "Videos",
        ),
        cookie_text=(
            "We use cookies and similar technologies to improve your experience, personalise "
            "content and ads, and analyse our traffic. By clicking \u201cAccept all\u201d you "
            "consent to our use of cookies."
        ),
        cookie_buttons=("Accept all", "Manage preferences"),
        share_heading="Share this article",
        newsletter_title="Get the Morning Briefing",
        newsletter_text="The day\u2019s top stories, delivered to your inbox every morning.",
        newsletter_button="Sign up",
        newsletter_fineprint="By signing up you agree to our Terms of Use and Privacy Policy.",
        footer_links=(
            "About us",
            "Contact us",
            "Advertise with us",
            "Careers",
            "Privacy policy",
            "Terms of use",
            "Cookie policy",
            "Grievance redressal",
            "Sitemap",
            "RSS feeds",
        ),
        footer_note=(
            "All rights reserved. Reproduction in whole or in part without permission is "
            "prohibited."
        ),
        follow_line="Follow us on Facebook, X, YouTube and Instagram",
        ad_label="Advertisement \u2014 Story continues below",
        audio=True,
        widgets_in_body=True,
        json_ld=True,
    ),
    "blog": Chrome(
        css="wp",
        tagline="Independent voices on the stories that matter",
        title_separator=" \u2013 ",
        sections=(
            "Home",
            "News",
            "Defence",
            "Politics",
            "Opinion",
            "Videos",
            "About",
            "Contact",
            "Donate",
        ),
        cookie_text=(
            "This website uses cookies to improve your experience. We\u2019ll assume you\u2019re "
            "ok with this, but you can opt-out if you wish."
        ),
        cookie_buttons=("Accept", "Read More"),
        share_heading="Share this:",
        newsletter_title="Subscribe to Blog via Email",
        newsletter_text=(
            "Enter your email address to subscribe to this blog and receive notifications of "
            "new posts by email."
        ),
        newsletter_button="Subscribe",
        newsletter_fineprint="Join {subscribers} other subscribers",
        footer_links=("Home", "About", "Contact", "Privacy Policy", "Disclaimer", "Archives"),
        footer_note="Proudly powered by WordPress | Theme: Newsup by Themeansar.",
        follow_line="Follow us on Telegram and X for instant updates",
        comments=True,
        protected=True,
    ),
    "defence": Chrome(
        css="td",
        tagline="Defence news, military analysis and strategic affairs",
        title_separator=" - ",
        sections=(
            "Home",
            "Army",
            "Navy",
            "Air Force",
            "Geopolitics",
            "Weapons & Technology",
            "Analysis",
            "Videos",
            "Contact",
        ),
        cookie_text=(
            "We use cookies to ensure that we give you the best experience on our website. If "
            "you continue to use this site we will assume that you are happy with it."
        ),
        cookie_buttons=("Ok", "Privacy policy"),
        share_heading="Share",
        newsletter_title="Subscribe to our newsletter",
        newsletter_text="Get the latest defence news and analysis delivered to your inbox.",
        newsletter_button="Subscribe",
        newsletter_fineprint="We respect your privacy. Unsubscribe at any time.",
        footer_links=(
            "About us",
            "Contact",
            "Advertise",
            "Write for us",
            "Privacy Policy",
            "Disclaimer",
            "Terms & Conditions",
        ),
        footer_note="All rights reserved. Views expressed are those of the authors.",
        follow_line="Follow us on Google News",
        ad_label="- Advertisement -",
        comments=True,
    ),
    "agency": Chrome(
        css="wire",
        tagline="Breaking news and wire reports, around the clock",
        title_separator=" | ",
        sections=(
            "Top News",
            "National",
            "World",
            "Business",
            "Markets",
            "Sports",
            "Science",
            "Photos",
            "Videos",
        ),
        cookie_text=(
            "We and our partners use cookies to provide our services and to show you relevant "
            "advertising. You can change your choices at any time in Cookie Settings."
        ),
        cookie_buttons=("Accept Cookies", "Cookie Settings"),
        share_heading="Share",
        newsletter_title="Sign up for the Daily Briefing",
        newsletter_text="Our morning news email brings you the stories you need to know.",
        newsletter_button="Sign up",
        newsletter_fineprint="You can unsubscribe at any time.",
        footer_links=(
            "About",
            "Our Standards",
            "Careers",
            "Contact",
            "Licensing",
            "Privacy",
            "Terms of Use",
            "Accessibility",
            "Corrections",
        ),
        footer_note=(
            "All rights reserved. Republication or redistribution of this content is expressly "
            "prohibited without prior written consent."
        ),
        follow_line="Purchase licensing rights",
        json_ld=True,
    ),
    "aggregator": Chrome(
        css="dg",
        tagline="The best reporting and analysis from across the region, in one place",
        title_separator=" \u00b7 ",
        sections=(
            "Home",
            "Top Stories",
            "Region",
            "Politics",
            "Security",
            "Economy",
            "Opinion",
            "Podcasts",
            "Newsletters",
        ),
        cookie_text=(
            "We value your privacy. We and our partners store and/or access information on a "
            "device, such as cookies, and process personal data for personalised ads and "
            "content, ad and content measurement, and audience insights."
        ),
        cookie_buttons=("I Accept", "Show Purposes"),
        share_heading="Share",
        newsletter_title="Newsletter",
        newsletter_text="Sign up for our weekly digest of the region\u2019s best analysis.",
        newsletter_button="Join now",
        newsletter_fineprint="No spam. One email a week.",
        footer_links=(
            "About",
            "Subscribe",
            "Gift a subscription",
            "Help",
            "Contact",
            "Privacy",
            "Terms",
            "Cookie settings",
        ),
        footer_note="All rights reserved.",
        follow_line="Listen to our podcast every Friday",
        audio=True,
        paywall=True,
        json_ld=True,
    ),
    "tabloid": Chrome(
        css="tb",
        tagline="Breaking news, viral stories and trending updates",
        title_separator=" | ",
        sections=(
            "Home",
            "Breaking",
            "Trending",
            "Viral",
            "Nation",
            "World",
            "Entertainment",
            "Sports",
            "Web Stories",
            "Videos",
        ),
        cookie_text=(
            "This site uses cookies. By continuing to browse you agree to our use of cookies."
        ),
        cookie_buttons=("Got it!",),
        share_heading="SHARE",
        newsletter_title="Don\u2019t miss a story!",
        newsletter_text="Get breaking news alerts straight to your inbox.",
        newsletter_button="Subscribe Now",
        newsletter_fineprint="Join our WhatsApp channel for instant updates.",
        footer_links=(
            "About Us",
            "Contact Us",
            "Advertise",
            "Privacy Policy",
            "Terms & Conditions",
            "Corrections Policy",
            "Fact-Check Policy",
            "Sitemap",
        ),
        footer_note="All rights reserved.",
        follow_line="Follow us on Google News",
        ad_label="ADVERTISEMENT",
        audio=True,
        widgets_in_body=True,
        json_ld=True,
    ),
}


def _slugify(text: str) -> str:
    out = "".join(c if c.isalnum() else "-" for c in text.lower())
    return "-".join(part for part in out.split("-") if part)


def _section_for(article: DemoArticle, chrome: Chrome) -> str:
    choices = chrome.sections[1:]
    return choices[zlib.crc32(article.slug.encode("utf-8")) % len(choices)]


def _subscribers(outlet: DemoOutlet) -> str:
    return f"{1000 + zlib.crc32(outlet.slug.encode('utf-8')) % 9000:,}"


def _e(text: str) -> str:
    return escape(text, quote=True)


def _header(outlet: DemoOutlet, chrome: Chrome, base_url: str) -> str:
    home = _e(homepage_url(base_url, outlet))
    nav = "\n".join(
        f'      <li class="{chrome.css}-menu-item"><a href="{home}section/{_slugify(s)}/">'
        f"{_e(s)}</a></li>"
        for s in chrome.sections
    )
    return f"""<header class="{chrome.css}-header" id="masthead">
  <div class="{chrome.css}-topbar">
    <span class="{chrome.css}-tagline">{_e(chrome.tagline)}</span>
    <a class="{chrome.css}-login" href="{home}account/login/">Sign in</a>
  </div>
  <div class="{chrome.css}-brand"><a href="{home}" rel="home">{_e(outlet.name)}</a></div>
  <nav class="{chrome.css}-nav" aria-label="Main menu">
    <ul class="{chrome.css}-menu">
{nav}
    </ul>
  </nav>
  <form class="{chrome.css}-search" role="search" action="{home}search/">
    <input type="search" name="q" placeholder="Search"><button type="submit">Search</button>
  </form>
</header>"""


def _cookie_banner(chrome: Chrome) -> str:
    buttons = "".join(
        f'<button type="button">{_e(label)}</button>' for label in chrome.cookie_buttons
    )
    return f"""<div class="{chrome.css}-cookie-consent" id="cookie-notice" role="dialog">
  <p>{_e(chrome.cookie_text)}</p>
  <div class="{chrome.css}-cookie-buttons">{buttons}</div>
</div>"""


def _share_row(chrome: Chrome, position: str) -> str:
    if chrome.widgets_in_body and position == "bottom":  # plain spans wired up by script
        spans = " ".join(f"<span>{_e(label)}</span>" for label in SHARE_LABELS)
        return f'<p class="{chrome.css}-tools">{spans}</p>'
    buttons = "".join(
        f'<a class="{chrome.css}-share-{_slugify(label)}" href="#" rel="nofollow">{_e(label)}</a>'
        for label in SHARE_LABELS
    )
    return (
        f'<div class="{chrome.css}-share {chrome.css}-share-{position}">'
        f"<span>{_e(chrome.share_heading)}</span>{buttons}</div>"
    )


def _audio_widget(chrome: Chrome) -> str:
    if chrome.widgets_in_body:  # a text-to-speech embed
        return f'<p class="{chrome.css}-tts"><span>Click to start listening</span></p>'
    return (
        f'<div class="{chrome.css}-audio-player"><button type="button">Listen to this article'
        f"</button><span>Click to start listening</span><span>00:00</span></div>"
    )


def _newsletter(outlet: DemoOutlet, chrome: Chrome, base_url: str) -> str:
    fineprint = chrome.newsletter_fineprint.format(subscribers=_subscribers(outlet))
    action = _e(homepage_url(base_url, outlet) + "newsletter/")
    return f"""<aside class="{chrome.css}-newsletter">
  <h3>{_e(chrome.newsletter_title)}</h3>
  <p>{_e(chrome.newsletter_text)}</p>
  <form action="{action}" method="post">
    <input type="email" name="email" placeholder="Email Address" required>
    <button type="submit">{_e(chrome.newsletter_button)}</button>
  </form>
  <p class="{chrome.css}-fineprint">{_e(fineprint)}</p>
</aside>"""


def _comment_form(chrome: Chrome) -> str:
    lines = [
        f'<div id="respond" class="{chrome.css}-comment-respond">',
        '<h3 id="reply-title" class="comment-reply-title">Leave a Reply',
        ' <small><a rel="nofollow" href="#respond">Cancel reply</a></small></h3>',
        '<form action="#" method="post" id="commentform" class="comment-form">',
        '<p class="comment-notes">Your email address will not be published.'
        " Required fields are marked *</p>",
        '<p><label for="comment">Comment *</label>'
        '<textarea id="comment" name="comment" required></textarea></p>',
        '<p><label for="author">Name *</label>'
        '<input id="author" name="author" type="text" required></p>',
        '<p><label for="email">Email *</label>'
        '<input id="email" name="email" type="email" required></p>',
        '<p><label for="url">Website</label><input id="url" name="url" type="url"></p>',
        '<p class="comment-form-cookies-consent"><input id="consent" type="checkbox">'
        ' <label for="consent">Save my name, email, and website in this browser for the'
        " next time I comment.</label></p>",
        '<p class="form-submit">'
        '<input name="submit" type="submit" id="submit" value="Post Comment"></p>',
        "</form>",
        "</div>",
    ]
    return "\n".join(lines)


def _protected_notice(chrome: Chrome) -> str:
    return f'<p class="{chrome.css}-notice"><span>error: </span>Content is protected !!</p>'


def _related(chrome: Chrome, related: Sequence[DemoArticle], base_url: str) -> str:
    if not related:
        return ""
    items = "\n".join(
        f'    <li><a href="{_e(article_url(base_url, a))}">{_e(a.title)}</a></li>' for a in related
    )
    return f"""<section class="{chrome.css}-related">
  <h2>Related stories</h2>
  <ul>
{items}
  </ul>
</section>"""


def _footer(outlet: DemoOutlet, chrome: Chrome, base_url: str) -> str:
    home = _e(homepage_url(base_url, outlet))
    links = "\n".join(
        f'    <li><a href="{home}{_slugify(label)}/">{_e(label)}</a></li>'
        for label in chrome.footer_links
    )
    return f"""<footer class="{chrome.css}-footer" id="colophon">
  <p class="{chrome.css}-follow">{_e(chrome.follow_line)}</p>
  <ul class="{chrome.css}-footer-links">
{links}
  </ul>
  <p class="{chrome.css}-copyright">&copy; {_e(outlet.name)}. {_e(chrome.footer_note)}</p>
</footer>"""


def _json_ld(outlet: DemoOutlet, article: DemoArticle, url: str, chrome: Chrome) -> str:
    data: dict[str, object] = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": article.title,
        "datePublished": article.published_at.isoformat(),
        "dateModified": article.published_at.isoformat(),
        "description": article.paragraphs[0],
        "mainEntityOfPage": url,
        "publisher": {"@type": "Organization", "name": outlet.name},
    }
    if article.author:
        data["author"] = {"@type": "Person", "name": article.author}
    if chrome.paywall:
        data["isAccessibleForFree"] = False
    text = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    return f'<script type="application/ld+json">{text}</script>'


def _page(outlet: DemoOutlet, title: str, head_extra: str, body: str, base_url: str) -> bytes:
    chrome = CHROMES[outlet.chrome]
    alternate = (
        f'<link rel="alternate" type="application/{outlet.feed_format}+xml"'
        f' title="{_e(outlet.name)}" href="{_e(feed_url(base_url, outlet))}">'
    )
    page = f"""<!DOCTYPE html>
<html lang="{_e(outlet.language)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
{head_extra}<link rel="stylesheet" href="/static/{chrome.css}/main.css">
{alternate}
</head>
<body class="{chrome.css}-body">
{_cookie_banner(chrome)}
{_header(outlet, chrome, base_url)}
<main id="main" class="{chrome.css}-main">
{body}
</main>
{_newsletter(outlet, chrome, base_url)}
{_footer(outlet, chrome, base_url)}
<script src="/static/{chrome.css}/app.js" defer></script>
</body>
</html>
"""
    return page.encode("utf-8")


def _paywalled(article: DemoArticle) -> tuple[list[str], str]:
    shown = list(article.paragraphs[:PAYWALL_VISIBLE_PARAGRAPHS])
    hidden = article.paragraphs[PAYWALL_VISIBLE_PARAGRAPHS:]
    source = hidden[0] if hidden else article.paragraphs[-1]
    words = source.split()
    teaser = " ".join(words[:18])
    return shown, f"{teaser} At........"


def render_article_page(
    outlet: DemoOutlet,
    article: DemoArticle,
    base_url: str,
    *,
    related: Sequence[DemoArticle] = (),
) -> bytes:
    """A full HTML5 article page in the outlet's chrome."""
    chrome = CHROMES[outlet.chrome]
    url = article_url(base_url, article)
    home = _e(homepage_url(base_url, outlet))
    section = _section_for(article, chrome)
    teaser = article.paragraphs[0]
    description = teaser if len(teaser) <= 160 else teaser[:157].rsplit(" ", 1)[0] + "..."
    head = [
        f'<meta name="description" content="{_e(description)}">',
        '<meta property="og:type" content="article">',
        f'<meta property="og:title" content="{_e(article.title)}">',
        f'<meta property="og:site_name" content="{_e(outlet.name)}">',
        f'<meta property="og:url" content="{_e(url)}">',
        f'<meta property="article:published_time" content="{article.published_at.isoformat()}">',
        f'<meta property="article:section" content="{_e(section)}">',
    ]
    if article.author:
        head.append(f'<meta name="author" content="{_e(article.author)}">')
    head.append(f'<link rel="canonical" href="{_e(url)}">')
    if chrome.json_ld:
        head.append(_json_ld(outlet, article, url, chrome))
    head_extra = "".join(line + "\n" for line in head)

    byline = f"By {_e(article.author)}" if article.author else f"{_e(outlet.name)} News Desk"
    if chrome.paywall:
        shown, cut = _paywalled(article)
    else:
        shown, cut = list(article.paragraphs), ""
    body_parts: list[str] = []
    for index, paragraph in enumerate(shown):
        body_parts.append(f"<p>{_e(paragraph)}</p>")
        if index == 1 and chrome.ad_label and len(shown) > 2:
            body_parts.append(f'<div class="{chrome.css}-ad-slot">{_e(chrome.ad_label)}</div>')
    if cut:
        body_parts.append(
            f'<div class="{chrome.css}-paywall">\n<p class="{chrome.css}-fade">{_e(cut)}</p>\n'
            f"<h3>Subscribe to continue reading</h3>\n"
            f"<p>Get unlimited access to {_e(outlet.name)} on any device.</p>\n"
            f'<a class="{chrome.css}-subscribe" href="{home}subscribe/">Subscribe now</a>\n'
            f'<p>Already a subscriber? <a href="{home}account/login/">Sign in</a></p>\n</div>'
        )
    paragraphs = "\n".join(body_parts)

    extras_top = [_share_row(chrome, "top")]
    body_top: list[str] = []
    if chrome.audio:
        (body_top if chrome.widgets_in_body else extras_top).append(_audio_widget(chrome))
    extras_bottom: list[str] = []
    body_bottom: list[str] = []
    if chrome.protected:
        body_bottom.append(_protected_notice(chrome))
    share_bottom = _share_row(chrome, "bottom")
    (body_bottom if chrome.widgets_in_body else extras_bottom).append(share_bottom)
    paragraphs = "\n".join([*body_top, paragraphs, *body_bottom])

    breadcrumb = (
        f'<nav class="{chrome.css}-breadcrumb" aria-label="Breadcrumb">'
        f'<a href="{home}">Home</a> &rsaquo; '
        f'<a href="{home}section/{_slugify(section)}/">{_e(section)}</a> &rsaquo; '
        f"<span>{_e(article.title)}</span></nav>"
    )
    byline_html = (
        f'<div class="{chrome.css}-byline"><span class="author">{byline}</span> '
        f'<time datetime="{article.published_at.isoformat()}">'
        f"{_human_date(article.published_at)}</time></div>"
    )
    body = f"""{breadcrumb}
<article class="{chrome.css}-article post-{_e(article.slug)}">
<header class="{chrome.css}-article-header">
<h1 class="{chrome.css}-headline">{_e(article.title)}</h1>
{byline_html}
</header>
{chr(10).join(extras_top)}
<div class="{chrome.css}-article-body entry-content">
{paragraphs}
</div>
{chr(10).join(extras_bottom)}
</article>
{_related(chrome, related, base_url)}
{_comment_form(chrome) if chrome.comments else ""}"""
    return _page(
        outlet, article.title + chrome.title_separator + outlet.name, head_extra, body, base_url
    )


def render_outlet_home(outlet: DemoOutlet, articles: Iterable[DemoArticle], base_url: str) -> bytes:
    """The outlet's front page: its released articles, newest first."""
    chrome = CHROMES[outlet.chrome]
    items = "\n".join(
        f'<li><a href="{_e(article_url(base_url, a))}">{_e(a.title)}</a> '
        f'<time datetime="{a.published_at.isoformat()}">{_human_date(a.published_at)}</time></li>'
        for a in _newest_first(a for a in articles if a.outlet == outlet.slug)
    )
    body = f'<h1>{_e(outlet.name)}</h1>\n<ul class="{chrome.css}-river">\n{items}\n</ul>'
    head = f'<meta name="description" content="{_e(chrome.tagline)}">\n'
    return _page(
        outlet, outlet.name + chrome.title_separator + chrome.tagline, head, body, base_url
    )


def render_not_found(outlet: DemoOutlet | None, base_url: str) -> bytes:
    """A 404 page, in the outlet's chrome when the path belongs to an outlet."""
    body = (
        "<h1>Page not found</h1>\n"
        "<p>Sorry, the page you are looking for does not exist or has been removed.</p>"
    )
    if outlet is None:
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
            f"<title>404 Not Found</title></head>\n<body>\n{body}\n</body>\n</html>\n"
        ).encode()
    return _page(
        outlet,
        "Page not found" + CHROMES[outlet.chrome].title_separator + outlet.name,
        "",
        body,
        base_url,
    )


def render_index(corpus: DemoCorpus) -> bytes:
    """The simulator's own front page: every outlet with its front page and feed."""
    rows = "\n".join(
        f'<tr><td><a href="{_e(homepage_path(o))}">{_e(o.name)}</a></td><td>{_e(o.country)}</td>'
        f'<td>{_e(o.kind)}</td><td><a href="{_e(feed_path(o))}">{_e(o.feed_format)}</a></td>'
        f"<td>{_e(o.feed_fault)}</td></tr>"
        for o in corpus.outlets
    )
    summary = (
        f"{len(corpus.outlets)} outlets, {len(corpus.articles)} articles;"
        f" day 0 is {_e(corpus.start.isoformat())}."
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Simulated outlets</title></head>
<body>
<h1>Simulated outlets</h1>
<p>{summary}</p>
<table>
<tr><th>Outlet</th><th>Country</th><th>Kind</th><th>Feed</th><th>Feed fault</th></tr>
{rows}
</table>
</body>
</html>
""".encode()


def render_robots() -> bytes:
    return b"User-agent: *\nAllow: /\nDisallow: /*/account/\n"


def _pdf_text(text: str) -> str:
    text = text.encode("latin-1", "replace").decode("latin-1")
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def render_pdf(article: DemoArticle) -> bytes:
    """A tiny but well-formed one-page PDF carrying the article's title."""
    stream = f"BT /F1 14 Tf 72 720 Td ({_pdf_text(article.title)}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)
