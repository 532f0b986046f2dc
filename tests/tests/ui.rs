//! `cove ui` over HTTP: the one-time token, the session cookie, the Host and
//! origin checks, every route, forms that validate, and the command line's
//! rules (ownership) behind the forms.

use cove_client::device::Device;
use cove_shared::DocId;
use cove_tests::devices::{PASSPHRASE, couple, sync_now};
use cove_tests::harness::{TempDir, TestRelay};
use cove_tests::web::{HttpResponse, form_body, http};
use cove_web::{self as ui, Running};

/// A running page server, its session cookie, and the forms' value.
struct Page {
    running: Running,
    addr: String,
    cookie: String,
    csrf: String,
}

impl Page {
    async fn open(home: &cove_client::home::Home) -> Self {
        let running = ui::start(home, PASSPHRASE, 0).await.unwrap();
        let addr = running.addr.to_string();
        let path = running.url.split_once(&addr).unwrap().1.to_owned();
        let first = http(&addr, "GET", &path, &[], "").await;
        assert_eq!(first.status, 200, "{first:?}");
        let cookie = first.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
        let mut page = Self { running, addr, cookie, csrf: String::new() };
        let html = page.get("/s/boundaries").await.body;
        let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
        page.csrf = html[at..at + 64].to_owned();
        page
    }

    async fn get(&self, path: &str) -> HttpResponse {
        http(&self.addr, "GET", path, &[("Cookie", &self.cookie)], "").await
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> HttpResponse {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        let origin = format!("http://{}", self.addr);
        let headers = [
            ("Cookie", self.cookie.as_str()),
            ("Origin", origin.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        http(&self.addr, "POST", path, &headers, &form_body(&all)).await
    }

    /// Posts, follows the redirect, and returns the page it leads to.
    async fn submit(&self, path: &str, fields: &[(&str, &str)]) -> HttpResponse {
        let posted = self.post(path, fields).await;
        assert_eq!(posted.status, 303, "{path}: {posted:?}");
        self.get(posted.header("location").unwrap()).await
    }
}

/// Waits until the sync engine of the page on `device`'s state directory
/// has sent everything the page wrote.
async fn sent(device: &Device) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !device.outbox().await.unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the page's changes were never sent");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn setup(name: &str) -> (TestRelay, TempDir, Device, Device) {
    let relay = TestRelay::start().await;
    let root = TempDir::new(name);
    let (a, b) = couple(&root, &relay.url, &relay.url).await;
    (relay, root, a, b)
}

#[tokio::test]
async fn the_page_opens_once_with_its_token_and_only_for_this_origin() {
    let (_relay, _root, a, _b) = setup("ui-auth").await;
    let running = ui::start(a.home(), PASSPHRASE, 0).await.unwrap();
    let addr = running.addr.to_string();
    let path = running.url.split_once(&addr).unwrap().1.to_owned();
    assert!(running.url.starts_with("http://127.0.0.1:"));

    // The page a browser is opened on: owner-only, forwarding to the address.
    let launcher = running.launcher().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&launcher).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let html = std::fs::read_to_string(&launcher).unwrap();
        assert!(html.contains(&format!("url={}", running.url)), "{html}");
    }

    // No cookie, a wrong token: refused.
    assert_eq!(http(&addr, "GET", "/", &[], "").await.status, 401);
    assert_eq!(http(&addr, "GET", "/?token=00", &[], "").await.status, 401);
    // Another Host (DNS rebinding): refused, even with the token.
    let rebinding = http(&addr, "GET", &path, &[("Host", "evil.example")], "").await;
    assert_eq!(rebinding.status, 421);
    // The token, once: a session cookie, HttpOnly and SameSite=Strict, on
    // a page that moves on to `/` by itself.
    let first = http(&addr, "GET", &path, &[], "").await;
    assert_eq!(first.status, 200);
    assert!(first.body.contains("content=\"0;url=/\""), "{}", first.body);
    let set = first.header("set-cookie").unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    let cookie = set.split(';').next().unwrap();
    let name = cookie.split('=').next().unwrap();
    assert_eq!(name, format!("cove_session_{}", running.addr.port()), "one name per page server");
    assert!(!launcher.exists(), "the launcher goes once its token is spent");
    let again = http(&addr, "GET", &path, &[], "").await;
    assert_eq!(again.status, 401, "the token works once");
    assert!(again.body.contains("used already"));
    // Refusals carry the same protective headers as pages.
    assert_eq!(again.header("cache-control"), Some("no-store"));
    assert_eq!(again.header("x-frame-options"), Some("DENY"));
    // The cookie opens the page, but only under this Host.
    let ok = http(&addr, "GET", "/", &[("Cookie", cookie)], "").await;
    assert_eq!(ok.status, 200);
    assert!(ok.header("content-security-policy").unwrap().contains("default-src 'self'"));
    let wrong_host =
        http(&addr, "GET", "/", &[("Cookie", cookie), ("Host", "localhost.evil:80")], "").await;
    assert_eq!(wrong_host.status, 421);
    let forged = http(&addr, "GET", "/", &[("Cookie", &format!("{name}=0000"))], "").await;
    assert_eq!(forged.status, 401);
    // A cookie of the same name set by a page on another port does not
    // shadow the real one.
    let both = format!("{name}=0000; {cookie}");
    assert_eq!(http(&addr, "GET", "/", &[("Cookie", &both)], "").await.status, 200);
    // A link cannot put words on the page: notes are kept on the server.
    for query in ["?m=Signal+from+sam%3A+pause", "?e=Signal+from+sam", "?n=0123abcd"] {
        let spoofed = http(&addr, "GET", &format!("/now{query}"), &[("Cookie", cookie)], "").await;
        assert_eq!(spoofed.status, 200);
        assert!(!spoofed.body.contains("Signal from"), "{query}");
        assert!(!spoofed.body.contains("class=\"flash\""), "{query}");
    }
    running.stop().await;
}

#[tokio::test]
async fn every_route_answers_and_cross_site_changes_are_refused() {
    let (_relay, _root, a, _b) = setup("ui-routes").await;
    let page = Page::open(a.home()).await;
    for path in [
        "/",
        "/now",
        "/s/needs",
        "/s/boundaries",
        "/s/menu",
        "/s/sequence",
        "/s/signals",
        "/s/vocabulary",
        "/checkin",
        "/deescalation",
        "/sessions",
        "/reviews",
        "/journal",
        "/status",
        "/assets/cove.css",
        "/assets/cove.js",
    ] {
        let response = page.get(path).await;
        assert_eq!(response.status, 200, "{path}");
        if !path.starts_with("/assets") {
            // Every asset comes from the page server itself.
            assert!(
                !response.body.contains("http://") && !response.body.contains("https://"),
                "{path}"
            );
            assert!(response.body.contains("<main id=\"main\""), "{path}");
        }
    }
    assert_eq!(page.get("/s/elsewhere").await.status, 404);
    // The status page reports the sync engine's connection.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !page.get("/status").await.body.contains("connected, and in sync") {
        assert!(std::time::Instant::now() < deadline, "the engine never reported its connection");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // A form from another site: refused by origin, and without the form
    // value, and with a cross-site fetch marker.
    let body = form_body(&[("csrf", &page.csrf), ("statement", "from elsewhere")]);
    let evil = [("Cookie", page.cookie.as_str()), ("Origin", "http://evil.example")];
    assert_eq!(http(&page.addr, "POST", "/s/boundaries/add", &evil, &body).await.status, 403);
    let marked = [("Cookie", page.cookie.as_str()), ("Sec-Fetch-Site", "cross-site")];
    assert_eq!(http(&page.addr, "POST", "/s/boundaries/add", &marked, &body).await.status, 403);
    let no_csrf = page.post("/s/boundaries/add", &[]).await;
    assert_eq!(no_csrf.status, 303, "csrf is checked after the origin");
    let unforged = form_body(&[("statement", "no value")]);
    let origin = format!("http://{}", page.addr);
    let headers = [("Cookie", page.cookie.as_str()), ("Origin", origin.as_str())];
    assert_eq!(
        http(&page.addr, "POST", "/s/boundaries/add", &headers, &unforged).await.status,
        403
    );
    let html = page.get("/s/boundaries").await.body;
    assert!(!html.contains("from elsewhere") && !html.contains("no value"));

    // The event stream is served as one.
    let mut stream = tokio::net::TcpStream::connect(&page.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request =
        format!("GET /events HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\n\r\n", page.addr, page.cookie);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("text/event-stream"));
    // Stopping does not wait for open event streams.
    page.running.stop().await;
    drop(stream);
}

#[tokio::test]
async fn forms_validate_follow_the_plan_rules_and_reach_the_partner() {
    let (_relay, _root, a, mut b) = setup("ui-forms").await;
    let page = Page::open(a.home()).await;

    // Clear errors for bad input; nothing is written.
    let missing = page.submit("/s/boundaries/add", &[("statement", "  ")]).await;
    assert!(
        missing.body.contains("\u{201c}The boundary, in your words\u{201d} is needed"),
        "{}",
        missing.body
    );
    let closeness = page.submit("/s/needs/add", &[("text", "Quiet"), ("closeness", "9")]).await;
    assert!(closeness.body.contains("takes a whole number from 0 to 4"), "{}", closeness.body);
    let choice =
        page.submit("/s/boundaries/add", &[("statement", "x"), ("firmness", "extreme")]).await;
    assert!(choice.body.contains("choose one of the listed values"));
    let day = page.submit("/sessions/log", &[("date", "2026-02-30")]).await;
    assert!(day.body.contains("is not a day"));

    // Real changes, sent to the relay as they are made.
    let added = page
        .submit(
            "/s/boundaries/add",
            &[("statement", "No talk about the session until morning"), ("scope", "cooldown")],
        )
        .await;
    assert!(added.body.contains("Added boundary"), "{}", added.body);
    page.submit("/s/menu/add", &[("title", "A glass of water"), ("category", "nourishment")]).await;
    page.submit("/journal", &[("text", "A private note")]).await;
    sent(&a).await;
    sync_now(&mut b).await;
    let plan = cove_client::plan::current(b.docs());
    let alex = plan.a.as_ref().unwrap();
    assert_eq!(alex.boundaries[0].statement, "No talk about the session until morning");
    assert_eq!(alex.boundaries[0].firmness.to_string(), "hard", "the command line's default");
    let water = plan.menu[0].meta.id.clone();
    assert!(cove_client::journal::list(&b).await.unwrap().is_empty(), "the journal stays on A");

    // A's page cannot change B's boundary.
    cove_tests::devices::put(&mut b, DocId::Shared, "nudge", "x").await;
    let b_boundary = {
        let who = cove_client::plan::write::Author { partner: b.partner(), now_ms: 1 };
        b.edit(b.partner().doc(), |tx| {
            cove_client::plan::write::add(
                tx,
                who,
                cove_client::plan::write::Section::Boundaries,
                vec![("statement", cove_client::plan::write::Field::Str("Ask first".into()))],
            )
            .map_err(Into::into)
        })
        .await
        .unwrap()
    };
    sync_now(&mut b).await;
    // The page takes up what its sync engine received.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !page.get("/s/boundaries").await.body.contains("Ask first") {
        assert!(std::time::Instant::now() < deadline, "B's boundary never reached A's page");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let refused = page.submit(&format!("/s/boundaries/{b_boundary}/archive"), &[]).await;
    assert!(refused.body.contains("only"), "{}", refused.body);

    // A preference, a withdrawal, an archive and a restore.
    page.submit(&format!("/prefer/{water}"), &[("preference", "ask-me")]).await;
    let bad = page.submit(&format!("/prefer/{water}"), &[("preference", "perhaps")]).await;
    assert!(bad.body.contains("Choose yes, maybe, ask-me or no."));
    // A's boundary, as B's device holds it: a second instance of A's device
    // syncing beside the page's own would race the page's state.
    let mine = cove_client::plan::current(b.docs()).a.unwrap().boundaries[0].meta.id.clone();
    let withdrawn = page.submit(&format!("/boundary/{mine}/withdraw"), &[]).await;
    page.submit(&format!("/s/menu/{water}/archive"), &[]).await;
    page.submit(&format!("/s/menu/{water}/restore"), &[]).await;
    sent(&a).await;
    sync_now(&mut b).await;
    let plan = cove_client::plan::current(b.docs());
    assert_eq!(plan.a.as_ref().unwrap().preferences[&water].to_string(), "ask-me");
    let status = plan.a.as_ref().unwrap().boundaries[0].status.to_string();
    assert_eq!(status, "withdrawn", "the page said: {}", withdrawn.body);
    assert!(!plan.menu[0].meta.archived());
    page.running.stop().await;
}

/// Every route the page server has, with its method.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/now"),
    ("GET", "/s/boundaries"),
    ("GET", "/checkin"),
    ("GET", "/deescalation"),
    ("GET", "/sessions"),
    ("GET", "/reviews"),
    ("GET", "/journal"),
    ("GET", "/status"),
    ("GET", "/events"),
    ("GET", "/assets/cove.css"),
    ("GET", "/assets/cove.js"),
    ("POST", "/s/boundaries/add"),
    ("POST", "/s/boundaries/X/edit"),
    ("POST", "/s/boundaries/X/archive"),
    ("POST", "/s/boundaries/X/restore"),
    ("POST", "/boundary/X/withdraw"),
    ("POST", "/prefer/X"),
    ("POST", "/step/X/move"),
    ("POST", "/setting/window"),
    ("POST", "/signal"),
    ("POST", "/signal/answer"),
    ("GET", "/signals.json"),
    ("GET", "/unlock"),
    ("POST", "/unlock"),
    ("POST", "/lock"),
    ("POST", "/alive"),
    ("POST", "/sessions/log"),
    ("POST", "/debrief/X"),
    ("POST", "/reviews/record"),
    ("POST", "/reviews/X/confirm"),
    ("POST", "/journal"),
];

#[tokio::test]
async fn every_route_needs_the_cookie_this_host_and_this_origin() {
    let (_relay, _root, a, _b) = setup("ui-every-route").await;
    let page = Page::open(a.home()).await;
    let before = page.get("/").await.body;
    let body = form_body(&[("csrf", &page.csrf), ("statement", "from elsewhere"), ("text", "x")]);
    let origin = format!("http://{}", page.addr);
    for (method, path) in ROUTES {
        let no_cookie = http(&page.addr, method, path, &[("Origin", &origin)], &body).await;
        assert_eq!(no_cookie.status, 401, "{method} {path} without the cookie");
        let wrong_host = [("Cookie", page.cookie.as_str()), ("Host", "cove.example:80")];
        let rebound = http(&page.addr, method, path, &wrong_host, &body).await;
        assert_eq!(rebound.status, 421, "{method} {path} under another Host");
        if *method == "POST" {
            for cross_site in [
                [("Origin", "http://evil.example"), ("Sec-Fetch-Site", "cross-site")],
                [("Origin", "null"), ("Sec-Fetch-Site", "cross-site")],
                [("Origin", origin.as_str()), ("Sec-Fetch-Site", "same-site")],
            ] {
                let headers = [("Cookie", page.cookie.as_str()), cross_site[0], cross_site[1]];
                let refused = http(&page.addr, method, path, &headers, &body).await;
                assert_eq!(refused.status, 403, "{method} {path} from {cross_site:?}");
            }
        }
    }
    // A browser's own form: `Origin: null` (no-referrer) but same-origin.
    let own = [
        ("Cookie", page.cookie.as_str()),
        ("Origin", "null"),
        ("Sec-Fetch-Site", "same-origin"),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let mine = form_body(&[("csrf", &page.csrf), ("statement", "Knock before coming in")]);
    assert_eq!(http(&page.addr, "POST", "/s/boundaries/add", &own, &mine).await.status, 303);
    let after = page.get("/").await.body;
    assert!(after.contains("Knock before coming in"));
    assert!(!before.contains("from elsewhere") && !after.contains("from elsewhere"));
    page.running.stop().await;
}

#[tokio::test]
async fn sessions_reviews_settings_steps_and_signals_from_the_page() {
    let (_relay, _root, mut a, mut b) = setup("ui-more-forms").await;
    // B's page: B is partner B, and A chooses first.
    let page = Page::open(b.home()).await;
    // The note a form left: a message or an error.
    let flash = |r: &HttpResponse| {
        let html = &r.body;
        let at = html.find("class=\"flash\"").or_else(|| html.find("class=\"error\""))?;
        Some(html[at..].split("</p>").next().unwrap().to_owned())
    };

    // Settings: validated, then written.
    for (path, bad) in
        [("/setting/window", "0"), ("/setting/limit", "ten"), ("/setting/cadence", "400")]
    {
        let refused = page.submit(path, &[("value", bad)]).await;
        assert!(flash(&refused).unwrap().contains("a whole number from 1 to"), "{path}");
    }
    page.submit("/setting/window", &[("value", "45")]).await;
    page.submit("/setting/limit", &[("value", "20")]).await;
    let reviews = page.submit("/setting/cadence", &[("value", "30")]).await;
    assert!(reviews.body.contains("Next review: "), "{}", reviews.body);
    assert_eq!(page.get("/setting/nothing").await.status, 405);
    assert_eq!(page.post("/setting/nothing", &[("value", "1")]).await.status, 404);

    // The menu, and a sequence whose step takes its name from an option.
    page.submit("/s/menu/add", &[("title", "Warm tea"), ("category", "nourishment")]).await;
    let tea = {
        let html = page.get("/s/sequence").await.body;
        let at = html.find(">Warm tea</option>").unwrap();
        let start = html[..at].rfind("value=\"").unwrap() + 7;
        html[start..html[start..].find('"').unwrap() + start].to_owned()
    };
    let nameless = page.submit("/s/sequence/add", &[("title", "")]).await;
    assert!(
        flash(&nameless).unwrap().contains("\u{201c}Name of the step\u{201d} is needed"),
        "{}",
        nameless.body
    );
    page.submit("/s/sequence/add", &[("title", "Lie down"), ("for", "b")]).await;
    let added = page.submit("/s/sequence/add", &[("option", &tea), ("optional", "true")]).await;
    assert!(flash(&added).unwrap().contains("Added step"), "{}", added.body);
    let missing = page.submit("/s/sequence/add", &[("option", "ZZZZZZ")]).await;
    assert!(flash(&missing).is_some_and(|f| f.contains("ZZZZZZ")), "{}", missing.body);
    sync_now(&mut b).await;
    let plan = cove_client::plan::current(b.docs());
    let steps: Vec<_> = plan.sequence.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(steps, ["Lie down", "Warm tea"]);
    assert_eq!(plan.sequence[1].option.as_deref(), Some(tea.as_str()));
    assert!(plan.sequence[1].optional);
    let tea_step = plan.sequence[1].meta.id.clone();
    let moved = page.submit(&format!("/step/{tea_step}/move"), &[("place", "first")]).await;
    assert!(flash(&moved).unwrap().contains("Moved the step"));
    let nowhere = page.submit(&format!("/step/{tea_step}/move"), &[("place", "sideways")]).await;
    assert!(flash(&nowhere).unwrap().contains("Say where"));
    sync_now(&mut b).await;
    let plan = cove_client::plan::current(b.docs());
    assert_eq!(plan.sequence[0].title, "Warm tea");
    assert_eq!(plan.checkin.window_minutes, Some(45));
    assert_eq!(plan.deescalation.reflection_limit_minutes, Some(20));
    assert_eq!(plan.reviews.cadence_days, Some(30));

    // A session, whose turn is derived, and a debrief answer in B's document.
    page.submit("/s/questions/add", &[("text", "What helped you?")]).await;
    let sessions = page.get("/sessions").await.body;
    assert!(sessions.contains("Next to choose the aftercare: <strong>alex</strong>"));
    let logged = page
        .submit(
            "/sessions/log",
            &[("date", "2026-11-20"), ("option", &tea), ("step", &tea_step), ("notes", "calm")],
        )
        .await;
    assert!(flash(&logged).unwrap().contains("Logged the session on 2026-11-20"));
    assert!(logged.body.contains("Next to choose the aftercare: <strong>sam</strong>"));
    sync_now(&mut b).await;
    let plan = cove_client::plan::current(b.docs());
    let session = plan.sessions[0].meta.id.clone();
    let question = plan.checkin.questions[0].meta.id.clone();
    assert_eq!(plan.sessions[0].options, vec![tea.clone()]);
    let empty = page
        .submit(&format!("/debrief/{session}"), &[("question", &question), ("answer", "")])
        .await;
    assert!(flash(&empty).unwrap().contains("Write an answer first."));
    page.submit(&format!("/debrief/{session}"), &[("question", &question), ("answer", "The tea.")])
        .await;

    // A review: recorded and confirmed for B; a signal from the page.
    let recorded = page.submit("/reviews/record", &[("wins", "the tea")]).await;
    assert!(flash(&recorded).unwrap().contains("Recorded the review"));
    assert!(recorded.body.contains("Confirmed by: sam"), "{}", recorded.body);
    let unknown = page.submit("/signal", &[("name", "purple")]).await;
    assert!(flash(&unknown).unwrap().contains("not a signal you have agreed on"));
    let sent = page.submit("/signal", &[("name", "check-on-me")]).await;
    // Sent within the page's few seconds, or (on a machine too busy for
    // that) plainly said not to be, and then sent by the sync engine.
    let said = flash(&sent).unwrap();
    assert!(
        said.contains("Signal &#39;check-on-me&#39; sent: the relay stored it")
            || said.contains("Signal &#39;check-on-me&#39; was NOT sent"),
        "{}",
        sent.body
    );

    let mut arrived = false;
    for _ in 0..50 {
        let report = sync_now(&mut a).await;
        if report.signals.iter().any(|s| s.signal.signal == "check-on-me") {
            arrived = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(arrived, "the signal never reached A");
    sync_now(&mut b).await;
    let plan = cove_client::plan::current(b.docs());
    let answers = &plan.b.as_ref().unwrap().debriefs[&session];
    assert_eq!(answers[&question], "The tea.");
    assert_eq!(plan.reviews.history[0].wins, "the tea");
    page.running.stop().await;
}

#[tokio::test]
async fn a_conflict_is_shown_to_its_owner_until_they_settle_it_on_the_page() {
    use cove_client::plan::write::{self, Author, Field, Section};
    let (relay, root, mut a1, mut b) = setup("ui-conflict").await;
    let (mut a2, _, _) =
        cove_tests::devices::pair(&mut a1, &root, "alex-tablet", &relay.url, true).await;
    let who = Author { partner: a1.partner(), now_ms: a1.now_ms() };
    let boundary = a1
        .edit(DocId::PartnerA, |tx| {
            write::add(
                tx,
                who,
                Section::Boundaries,
                vec![
                    ("statement", Field::Str("No surprises with cold water".into())),
                    ("firmness", Field::Choice("soft")),
                ],
            )
            .map_err(Into::into)
        })
        .await
        .unwrap();
    for device in [&mut a1, &mut a2, &mut b] {
        sync_now(device).await;
    }
    sync_now(&mut a1).await;
    // A's two devices, each offline from the other, set different values.
    for (on_a2, value) in [(false, "hard"), (true, "hard"), (true, "soft")] {
        let device = if on_a2 { &mut a2 } else { &mut a1 };
        let set = vec![("firmness", Field::Choice(value))];
        device
            .edit(DocId::PartnerA, |tx| {
                write::update(tx, Section::Boundaries, &boundary, set).map_err(Into::into)
            })
            .await
            .unwrap();
    }
    for device in [&mut a1, &mut a2, &mut b] {
        sync_now(device).await;
    }
    sync_now(&mut a1).await;

    let page_a = Page::open(a1.home()).await;
    let page_b = Page::open(b.home()).await;
    for path in ["/", "/s/boundaries"] {
        let html = page_a.get(path).await.body;
        assert!(html.contains("To resolve"), "{path}: {html}");
        assert!(html.contains("Your firmness for &quot;"), "{path}: {html}");
        assert!(html.contains("hard is in force"), "{path}");
        assert!(!page_b.get(path).await.body.contains("To resolve"), "only the owner is asked");
    }
    // The owner keeps the value in force by saving it: settled everywhere.
    let saved = page_a
        .submit(
            &format!("/s/boundaries/{boundary}/edit"),
            &[("statement", "No surprises with cold water"), ("firmness", "hard")],
        )
        .await;
    assert!(saved.body.contains("Saved boundary"), "{}", saved.body);
    assert!(!saved.body.contains("To resolve"), "{}", saved.body);
    sync_now(&mut b).await;
    assert!(cove_client::plan::current(b.docs()).conflicts.is_empty());
    page_a.running.stop().await;
    page_b.running.stop().await;
}

#[tokio::test]
async fn an_item_whose_key_is_not_an_id_never_reaches_the_page() {
    use automerge::transaction::Transactable;
    use automerge::{ObjType, ROOT, ReadDoc, ScalarValue};
    use cove_client::plan::write::{self, Author, Field, Section};
    let (_relay, _root, mut a, mut b) = setup("ui-hostile-key").await;
    let who = Author { partner: a.partner(), now_ms: a.now_ms() };
    let boundary = a
        .edit(DocId::PartnerA, |tx| {
            write::add(
                tx,
                who,
                Section::Boundaries,
                vec![("statement", Field::Str("Knock first".into()))],
            )
            .map_err(Into::into)
        })
        .await
        .unwrap();
    sync_now(&mut a).await;
    let page = Page::open(a.home()).await;

    // A modified client on B's device writes a menu item under a key made
    // to turn its Archive button into "withdraw A's boundary", beside an
    // honest one.
    let hostile = format!("x/../../../boundary/{boundary}/withdraw?");
    let who = Author { partner: b.partner(), now_ms: b.now_ms() };
    b.edit(DocId::Shared, |tx| {
        let menu = match tx.get(ROOT, "menu")? {
            Some((_, id)) => id,
            None => unreachable!("the genesis made the menu"),
        };
        let item = tx.put_object(&menu, hostile.as_str(), ObjType::Map)?;
        tx.put(&item, "title", "Soft light")?;
        tx.put(&item, "created_at", ScalarValue::Timestamp(who.now_ms))?;
        write::add(tx, who, Section::Menu, vec![("title", Field::Str("Warm socks".into()))])?;
        Ok(())
    })
    .await
    .unwrap();
    sync_now(&mut b).await;

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let html = loop {
        let html = page.get("/s/menu").await.body;
        if html.contains("Warm socks") {
            break html;
        }
        assert!(std::time::Instant::now() < deadline, "B's change never reached A's page");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(!html.contains("Soft light") && !html.contains("withdraw?"), "{html}");
    assert!(!page.get("/").await.body.contains("Soft light"));
    sync_now(&mut a).await;
    let plan = cove_client::plan::current(a.docs());
    assert_eq!(plan.menu.iter().map(|m| m.title.as_str()).collect::<Vec<_>>(), ["Warm socks"]);
    assert_eq!(plan.a.unwrap().boundaries[0].status.to_string(), "active");
    page.running.stop().await;
}

#[tokio::test]
async fn a_change_made_while_the_relay_is_away_is_kept_and_sent_when_it_returns() {
    let root = TempDir::new("ui-relay-away");
    let database = root.path().join("relay.db");
    let relay = TestRelay::start_on_file(&database).await;
    let addr = relay.addr;
    let (a, mut b) = couple(&root, &relay.url, &relay.url).await;
    let page = Page::open(a.home()).await;
    relay.stop().await;

    // The page answers at once, keeps the change, and says the relay is away.
    let added =
        page.submit("/s/boundaries/add", &[("statement", "Lights stay low afterwards")]).await;
    assert!(added.body.contains("Added boundary"), "{}", added.body);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !page.get("/status").await.body.contains("not reachable") {
        assert!(std::time::Instant::now() < deadline, "the status page never said so");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(a.outbox().await.unwrap().len(), 1, "kept, sealed, in the outbox");

    // The relay returns: the sync engine sends it, and B receives it.
    let _relay = TestRelay::start_at(addr, &database).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !a.outbox().await.unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "never sent after the relay returned");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    sync_now(&mut b).await;
    let plan = cove_client::plan::current(b.docs());
    assert_eq!(plan.a.unwrap().boundaries[0].statement, "Lights stay low afterwards");
    page.running.stop().await;
}

/// The status page lists each open alarm with when it happened, offers to
/// acknowledge it, and keeps it in a history once acknowledged.
#[tokio::test]
async fn alarms_are_shown_with_their_time_and_can_be_acknowledged() {
    use cove_client::device::Alarm;
    let (_relay, _root, mut a, b) = setup("ui-alarms").await;
    a.raise_alarm(Alarm::Inconsistent { cursor: 77 }).await.unwrap();
    a.raise_alarm(Alarm::Fork { device: b.id() }).await.unwrap();
    let ids: Vec<u64> = a.sync_state().alarm_log().open().map(|r| r.id).collect();
    let page = Page::open(a.home()).await;
    let status = page.get("/status").await.body;
    assert!(status.contains("numbered 77, beyond the end of its own log"), "{status}");
    assert!(status.contains("sent two different versions of the same change"), "{status}");
    assert!(status.contains("just now"), "{status}");
    assert!(status.contains(&format!("action=\"/alarms/{}/ack\"", ids[0])), "{status}");

    let after = page.submit(&format!("/alarms/{}/ack", ids[0]), &[]).await.body;
    assert!(after.contains("Alarm acknowledged."), "{after}");
    let open = after.split("Earlier alarms").next().unwrap();
    assert!(!open.contains("numbered 77"), "acknowledged, so no longer open: {after}");
    assert!(after.contains("Earlier alarms"), "{after}");
    assert!(after.contains("acknowledged just now"), "{after}");

    let cleared = page.submit("/alarms/all/ack", &[]).await.body;
    assert!(cleared.contains("No alarms."), "{cleared}");
    let unknown = page.submit("/alarms/999/ack", &[]).await.body;
    assert!(unknown.contains("no open alarm number 999"), "{unknown}");
}

/// The hidden fields of the first form on `html` that posts to `action`,
/// as a browser would send them.
fn form_fields(html: &str, action: &str) -> Vec<(String, String)> {
    let start = html.find(&format!("action=\"{action}\"")).unwrap_or_else(|| panic!("{html}"));
    let form = &html[start..start + html[start..].find("</form>").unwrap()];
    let unescape = |s: &str| {
        s.replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    form.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|input| {
            let (name, rest) = input.split_once('"').unwrap();
            let value = rest.split_once("value=\"").unwrap().1.split_once('"').unwrap().0;
            (name.to_owned(), unescape(value))
        })
        .filter(|(name, _)| name != "csrf")
        .collect()
}

#[tokio::test]
async fn a_value_replaced_at_the_same_time_is_on_both_pages_and_one_button_restores_it() {
    use cove_client::plan::write::{self, Author, Field, Section};
    let (relay, _root, mut a, mut b) = setup("ui-replaced").await;
    let who = Author { partner: a.partner(), now_ms: a.now_ms() };
    let option = a
        .edit(DocId::Shared, |tx| {
            write::add(tx, who, Section::Menu, vec![("title", Field::Str("Tea".into()))])
                .map_err(Into::into)
        })
        .await
        .unwrap();
    sync_now(&mut a).await;
    sync_now(&mut b).await;
    // Each device retitles the option before it has the other's change.
    for (device, title) in [(&mut a, "Warm tea"), (&mut b, "Green \"tea\" & honey")] {
        let set = vec![("title", Field::Str(title.into()))];
        device
            .edit(DocId::Shared, |tx| {
                write::update(tx, Section::Menu, &option, set).map_err(Into::into)
            })
            .await
            .unwrap();
    }
    sync_now(&mut a).await;
    sync_now(&mut b).await;
    sync_now(&mut a).await;
    let kept = cove_client::plan::current(b.docs()).menu[0].title.clone();
    let lost = if kept == "Warm tea" { "Green \"tea\" & honey" } else { "Warm tea" };

    let page_a = Page::open(a.home()).await;
    let page_b = Page::open(b.home()).await;
    for page in [&page_a, &page_b] {
        let html = page.get("/s/menu").await.body;
        assert!(html.contains("changed on both devices at once: kept"), "{html}");
        assert!(html.contains("Restore "), "both partners may put it back: {html}");
    }
    let html = page_b.get("/s/menu").await.body;
    let fields = form_fields(&html, "/replaced/restore");
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let done = page_b.submit("/replaced/restore", &fields).await;
    assert!(done.body.contains("Restored "), "{}", done.body);
    assert!(!done.body.contains("changed on both devices at once"), "{}", done.body);
    // The page's sync engine sends it on its own time.
    let mut plan = cove_client::plan::current(a.docs());
    for _ in 0..100 {
        sync_now(&mut a).await;
        plan = cove_client::plan::current(a.docs());
        if plan.menu[0].title == lost {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(plan.menu[0].title, lost);
    assert!(plan.replaced.is_empty());
    page_a.running.stop().await;
    page_b.running.stop().await;
    drop(relay);
}
