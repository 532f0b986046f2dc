//! `cove ui` in a real browser (headless Chromium through chromedriver):
//! one partner's change and signal reach the other's open page live, and
//! the main pages are saved as screenshots in `target/ui-screenshots/`.
//!
//! `.ci/run` installs Debian's `chromium` and `chromium-driver` and sets
//! `COVE_REQUIRE_BROWSER`, so there the test cannot be skipped; a plain
//! `cargo test` on a machine without them skips it, and says so.

use cove_client::plan::write::{self, Author, Field, Section};
use cove_tests::devices::{PASSPHRASE, couple, sync_now};
use cove_tests::harness::{TempDir, TestRelay};
use cove_tests::web::{Driver, chromedriver_or_skip, save_screenshot as save};
use cove_web as ui;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partners_change_and_signal_reach_the_other_page_live() {
    let Some(binary) = chromedriver_or_skip() else { return };
    let relay = TestRelay::start().await;
    let root = TempDir::new("browser");
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    // A menu option for A to give a preference for.
    let who = Author { partner: b.partner(), now_ms: b.now_ms() };
    let water = b
        .edit(cove_shared::DocId::Shared, |tx| {
            write::add(
                tx,
                who,
                Section::Menu,
                vec![("title", Field::Str("A glass of water".into()))],
            )
            .map_err(Into::into)
        })
        .await
        .unwrap();
    sync_now(&mut b).await;
    sync_now(&mut a).await;

    let page_a = ui::start(a.home(), PASSPHRASE, 0).await.unwrap();
    let page_b = ui::start(b.home(), PASSPHRASE, 0).await.unwrap();
    let base_a = format!("http://{}", page_a.addr);
    let base_b = format!("http://{}", page_b.addr);
    let driver = Driver::start(&binary).await;
    let browser_a = driver.session().await;
    let browser_b = driver.session().await;
    // A's browser is opened as `cove ui` opens one: on the owner-only page
    // that forwards to the one-time address. B's goes to the address.
    let launcher = page_a.launcher().unwrap();
    browser_a.go(&format!("file://{}", launcher.display())).await;
    browser_b.go(&page_b.url).await;
    assert!(browser_a.wait_for_text("Our aftercare plan", Duration::from_secs(10)).await);
    assert!(!launcher.exists(), "the launcher is removed once its token is spent");
    assert!(browser_b.wait_for_text("Our aftercare plan", Duration::from_secs(10)).await);
    // Marks this page load: a reload would lose it.
    browser_b.run("window.coveStay = 'kept'; return true;").await;

    // A writes a boundary and a preference on A's own page.
    browser_a.go(&format!("{base_a}/s/boundaries")).await;
    let add = "form[action='/s/boundaries/add']";
    browser_a
        .type_into(&format!("{add} input[name=statement]"), "No phones in the room afterwards")
        .await;
    browser_a.click(&format!("{add} button[type=submit]")).await;
    assert!(
        browser_a.wait_for_text("Added boundary", Duration::from_secs(10)).await,
        "A's page never confirmed the boundary: {}",
        browser_a.text().await
    );
    browser_a.go(&format!("{base_a}/s/menu")).await;
    let prefer = format!("form[action='/prefer/{water}']");
    browser_a
        // As a person's choice does, the change fires `input`, which tells
        // the page not to swap its main part while the form is half done.
        .run(&format!(
            "const s = document.querySelector(\"{prefer} select\"); s.value = 'yes'; \
             s.dispatchEvent(new Event('input', {{ bubbles: true }})); return true;"
        ))
        .await;
    browser_a.click(&format!("{prefer} button[type=submit]")).await;
    assert!(browser_a.wait_for_text("Your preference is now: yes", Duration::from_secs(10)).await);

    // B's open page shows both, without a reload.
    assert!(
        browser_b.wait_for_text("No phones in the room afterwards", Duration::from_secs(15)).await,
        "B's page never showed A's boundary: {}",
        browser_b.text().await
    );
    let option_shown = async {
        for _ in 0..150 {
            if browser_b.text().await.to_lowercase().contains("alex yes") {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    assert!(option_shown.await, "B's page never showed A's preference");
    assert_eq!(browser_b.run("return window.coveStay || null;").await, "kept", "the page reloaded");
    save(&browser_b, "plan-overview").await;

    // A signal button on B's right-now view reaches A's open page.
    browser_a.go(&format!("{base_a}/")).await;
    browser_b.go(&format!("{base_b}/now")).await;
    save(&browser_b, "right-now").await;
    browser_b.click("form[action='/signal']:has(input[value='pause']) button[type=submit]").await;
    assert!(
        browser_a.wait_for_text("Signal from", Duration::from_secs(15)).await,
        "A's page never showed the signal: {}",
        browser_a.text().await
    );
    assert!(browser_a.text().await.contains("pause"));
    save(&browser_a, "signal-received").await;

    // A's device says, in its own signed checkpoint, that it holds the
    // signal: B's page says it was seen, and B's status page says what A's
    // device holds of B's changes.
    let mut seen = false;
    for _ in 0..60 {
        browser_b.go(&format!("{base_b}/now")).await;
        let text = browser_b.text().await;
        if text.contains("Your signals") && text.contains("device has it") {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(seen, "B's page never said the signal was seen: {}", browser_b.text().await);
    browser_b.go(&format!("{base_b}/status")).await;
    assert!(
        browser_b.wait_for_text("What each device has received", Duration::from_secs(10)).await
    );
    assert!(browser_b.text().await.contains("has all your changes"), "{}", browser_b.text().await);
    save(&browser_b, "status-receipts").await;

    browser_a.go(&format!("{base_a}/reviews")).await;
    assert!(browser_a.wait_for_text("Since the plan began", Duration::from_secs(10)).await);
    save(&browser_a, "review").await;

    browser_a.close().await;
    browser_b.close().await;
    page_a.stop().await;
    page_b.stop().await;
}
