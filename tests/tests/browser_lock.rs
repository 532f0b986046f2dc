//! `cove ui` on a shared computer and a small screen, in headless
//! Chromium: the page locks after its time without use and at once on
//! Escape twice, shows no plan content while locked (after a reload too),
//! and opens again only with the passphrase; at 390 × 844 the sections take
//! one line and the page does not scroll sideways. Screenshots go to
//! `target/ui-screenshots/`.

use cove_client::plan::write::{self, Author, Field, Section};
use cove_tests::devices::{PASSPHRASE, couple, sync_now};
use cove_tests::harness::{TempDir, TestRelay};
use cove_tests::web::{Browser, Driver, chromedriver_or_skip, save_screenshot as save};
use cove_web as ui;
use serde_json::Value;
use std::time::Duration;

const PRIVATE: &str = "A private detail of the plan";

/// Waits (up to `within`) until the browser is at a path ending in `path`.
async fn wait_for_path(browser: &Browser<'_>, path: &str, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if browser.url().await.split('?').next().is_some_and(|u| u.ends_with(path)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn unlock(browser: &Browser<'_>, passphrase: &str) {
    browser.type_into("input[name=passphrase]", passphrase).await;
    browser.click("form[action='/unlock'] button[type=submit]").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_locks_when_idle_or_on_escape_twice_and_fits_a_small_screen() {
    let Some(binary) = chromedriver_or_skip() else { return };
    let relay = TestRelay::start().await;
    let root = TempDir::new("browser-lock");
    let (mut a, b) = couple(&root, &relay.url, &relay.url).await;
    let who = Author { partner: a.partner(), now_ms: a.now_ms() };
    a.edit(cove_shared::DocId::Shared, |tx| {
        write::add(tx, who, Section::Menu, vec![("title", Field::Str(PRIVATE.into()))])
            .map_err(Into::into)
    })
    .await
    .unwrap();
    sync_now(&mut a).await;
    let home = a.home().clone();
    drop((a, b));
    let options =
        ui::Options { lock_after: Some(Duration::from_secs(4)), ..ui::Options::default() };
    let page = ui::start_with(&home, PASSPHRASE, options).await.unwrap();
    let base = format!("http://{}", page.addr);
    let driver = Driver::start(&binary).await;
    let browser = driver.session().await;
    browser.resize(390, 844).await;
    browser.go(&page.url).await;
    assert!(browser.wait_for_text(PRIVATE, Duration::from_secs(10)).await);

    // A phone-sized screen: the sections take one line, and the page does
    // not scroll sideways.
    let nav = browser
        .run("return document.querySelector('header nav').getBoundingClientRect().height;")
        .await;
    assert!(nav.as_f64().unwrap() < 60.0, "the navigation takes {nav} px");
    let heading =
        browser.run("return document.querySelector('main h1').getBoundingClientRect().top;").await;
    assert!(heading.as_f64().unwrap() < 100.0, "the content starts at {heading} px");
    let sideways =
        browser.run("return document.documentElement.scrollWidth > window.innerWidth;").await;
    assert_eq!(sideways, Value::Bool(false), "the page scrolls sideways");
    save(&browser, "small-screen").await;
    browser.go(&format!("{base}/now")).await;
    assert!(browser.wait_for_text("Right now", Duration::from_secs(5)).await);
    save(&browser, "small-screen-now").await;

    // Escape twice: blank at once, then locked.
    let blank = browser
        .run(
            "for (let i = 0; i < 2; i++) document.dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape' }));\
             return document.body.innerText.trim().length;",
        )
        .await;
    assert_eq!(blank, Value::from(0), "the page was not blanked at once");
    assert!(
        wait_for_path(&browser, "/unlock", Duration::from_secs(5)).await,
        "{}",
        browser.url().await
    );
    let text = browser.text().await;
    assert!(text.contains("Cove is locked"), "{text}");
    assert!(!text.contains(PRIVATE), "{text}");
    save(&browser, "locked").await;
    // The lock is the server's: going to a page, or back, finds it locked.
    browser.go(&format!("{base}/")).await;
    assert!(wait_for_path(&browser, "/unlock", Duration::from_secs(5)).await);
    assert!(!browser.text().await.contains(PRIVATE));
    browser.run("history.back(); return true;").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!browser.text().await.contains(PRIVATE), "history showed the plan");

    // A wrong passphrase is refused; the right one opens the page again.
    browser.go(&format!("{base}/unlock")).await;
    unlock(&browser, "not the passphrase").await;
    assert!(browser.wait_for_text("That is not the passphrase", Duration::from_secs(10)).await);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    unlock(&browser, PASSPHRASE).await;
    assert!(
        browser.wait_for_text(PRIVATE, Duration::from_secs(10)).await,
        "{}",
        browser.text().await
    );

    // Left alone, it locks by itself.
    assert!(
        wait_for_path(&browser, "/unlock", Duration::from_secs(20)).await,
        "the page never locked by itself"
    );
    assert!(!browser.text().await.contains(PRIVATE));

    browser.close().await;
    page.stop().await;
}
