//! The safe word and truthful signal states in a real browser (headless
//! Chromium): a stop covers the partner's open page until they acknowledge
//! it, the sender sees the acknowledgement and lifts the stop with the
//! all-clear, and a signal sent while the relay is down is said, plainly,
//! not to have been sent. Screenshots go to `target/ui-screenshots/`.

use cove_tests::devices::{PASSPHRASE, couple, sync_now};
use cove_tests::harness::{TempDir, TestRelay};
use cove_tests::web::{Browser, Driver, chromedriver_or_skip, save_screenshot as save};
use cove_web as ui;
use std::time::Duration;

/// Whether the full-screen stop is showing.
async fn stop_showing(browser: &Browser<'_>) -> bool {
    browser.run("const s = document.getElementById('stop'); return !!s && !s.hidden;").await
        == serde_json::Value::Bool(true)
}

/// Reloads `url` until its text contains `needle` (up to 15 s).
async fn reload_until(browser: &Browser<'_>, url: &str, needle: &str) -> bool {
    for _ in 0..30 {
        browser.go(url).await;
        if browser.text().await.contains(needle) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_safe_word_stops_the_other_page_until_acknowledged_and_the_all_clear_lifts_it() {
    let Some(binary) = chromedriver_or_skip() else { return };
    let relay = TestRelay::start().await;
    let root = TempDir::new("browser-signals");
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    sync_now(&mut a).await;
    sync_now(&mut b).await;
    let (home_a, home_b) = (a.home().clone(), b.home().clone());
    drop((a, b));
    let page_a = ui::start(&home_a, PASSPHRASE, 0).await.unwrap();
    let page_b = ui::start(&home_b, PASSPHRASE, 0).await.unwrap();
    let (base_a, base_b) = (format!("http://{}", page_a.addr), format!("http://{}", page_b.addr));
    let driver = Driver::start(&binary).await;
    let (browser_a, browser_b) = (driver.session().await, driver.session().await);
    browser_a.go(&page_a.url).await;
    browser_b.go(&page_b.url).await;
    assert!(browser_a.wait_for_text("Our aftercare plan", Duration::from_secs(10)).await);
    assert!(browser_b.wait_for_text("Our aftercare plan", Duration::from_secs(10)).await);
    assert!(!stop_showing(&browser_a).await);

    // B uses the safe word on "Right now"; the page says it was sent only
    // once the relay showed it stored it.
    browser_b.go(&format!("{base_b}/now")).await;
    browser_b.click("form.stop button[type=submit]").await;
    // Sent (or, on a machine too busy to confirm it within the page's few
    // seconds, plainly said not to be yet: the sync engine then sends it).
    assert!(
        browser_b.wait_for_text("Signal 'stop'", Duration::from_secs(10)).await,
        "{}",
        browser_b.text().await
    );
    let said = browser_b.text().await;
    assert!(
        said.contains("Signal 'stop' sent: the relay stored it")
            || said.contains("Signal 'stop' was NOT sent"),
        "{said}"
    );

    // A's open page, untouched, is covered by the stop.
    let mut covered = false;
    for _ in 0..150 {
        if stop_showing(&browser_a).await {
            covered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(covered, "A's page never showed the stop: {}", browser_a.text().await);
    let said = browser_a.text().await;
    assert!(said.contains("used the safe word: stop (stop everything, now)"), "{said}");
    save(&browser_a, "stop-received").await;
    // It stays on every page until acknowledged.
    browser_a.go(&format!("{base_a}/reviews")).await;
    assert!(browser_a.wait_for_text("used the safe word", Duration::from_secs(5)).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(stop_showing(&browser_a).await, "a new page lost the stop");

    browser_a.click("#stop button[type=submit]").await;
    // Said as it went: sent, or (on a busy machine) not yet.
    let mut answered = false;
    for _ in 0..100 {
        let text = browser_a.text().await;
        if text.contains("You acknowledged it:")
            || text.contains("Your acknowledgement was NOT sent")
        {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "{}", browser_a.text().await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!stop_showing(&browser_a).await, "the stop stayed after it was acknowledged");
    assert!(
        browser_a.text().await.contains("they have not sent the all-clear yet"),
        "{}",
        browser_a.text().await
    );

    // B sees the acknowledgement, and lifts the stop.
    let now_b = format!("{base_b}/now");
    assert!(
        reload_until(&browser_b, &now_b, "acknowledged by").await,
        "B never saw the acknowledgement: {}",
        browser_b.text().await
    );
    save(&browser_b, "stop-acknowledged").await;
    browser_b.click("section.all-clear button[type=submit]").await;
    assert!(browser_b.wait_for_text("Signal 'all-clear'", Duration::from_secs(10)).await);
    assert!(
        browser_a.wait_for_text("the stop is over", Duration::from_secs(15)).await,
        "A never saw the all-clear: {}",
        browser_a.text().await
    );
    assert!(browser_a.text().await.contains("they have since sent the all-clear"));
    assert!(!stop_showing(&browser_a).await);
    save(&browser_a, "all-clear-received").await;

    // With the relay gone, a signal is plainly not sent.
    relay.stop().await;
    browser_b.go(&now_b).await;
    browser_b.click("form[action='/signal']:has(input[value='pause']) button[type=submit]").await;
    assert!(
        browser_b.wait_for_text("Signal 'pause' was NOT sent", Duration::from_secs(15)).await,
        "{}",
        browser_b.text().await
    );
    let said = browser_b.text().await;
    assert!(!said.contains("Signal 'pause' sent"), "{said}");
    assert!(said.contains("not sent yet"), "its state below says so too: {said}");
    save(&browser_b, "signal-not-sent").await;

    browser_a.close().await;
    browser_b.close().await;
    page_a.stop().await;
    page_b.stop().await;
}
