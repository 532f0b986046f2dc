//! The aftercare plan across devices: every section reaches the partner,
//! the merge rules hold when two devices edit at once, and a partner's own
//! document is theirs alone on every receiving device.

use automerge::ReadDoc;
use automerge::transaction::Transactable;
use cove_client::device::Device;
use cove_client::documents::actor_of;
use cove_client::plan::model::{
    Category, Domain, Firmness, ForWhom, Plan, Preference, Scope, Status,
};
use cove_client::plan::write::{self, Author, Field, Section};
use cove_client::plan::{self, ids};
use cove_shared::wire::{Cursor, StoredEnvelope};
use cove_shared::{DocId, ManualClock, Partner};
use cove_tests::devices::{PASSPHRASE, couple, pair, sync_now};
use cove_tests::harness::{TempDir, TestRelay};
use std::sync::Arc;

fn author(device: &Device) -> Author {
    Author { partner: device.partner(), now_ms: device.now_ms() }
}

async fn add(device: &mut Device, section: Section, fields: Vec<(&'static str, Field)>) -> String {
    let who = author(device);
    let doc = section.doc(device.partner());
    device
        .edit(doc, |tx| write::add(tx, who, section, fields).map_err(Into::into))
        .await
        .unwrap_or_else(|e| panic!("add {section:?}: {e}"))
}

async fn update(
    device: &mut Device,
    section: Section,
    id: &str,
    fields: Vec<(&'static str, Field)>,
) {
    let doc = section.doc(device.partner());
    device
        .edit(doc, |tx| write::update(tx, section, id, fields).map_err(Into::into))
        .await
        .unwrap_or_else(|e| panic!("update {section:?}: {e}"));
}

async fn prefer(device: &mut Device, option: &str, value: Preference) {
    let doc = device.partner().doc();
    let plan = read(device);
    let basis = plan::read::option_basis(plan.menu.iter().find(|m| m.meta.id == option).unwrap());
    device
        .edit(doc, |tx| write::set_preference(tx, option, value, &basis).map_err(Into::into))
        .await
        .unwrap();
}

fn text(s: &str) -> Field {
    Field::Str(s.to_owned())
}

fn read(device: &Device) -> Plan {
    plan::current(device.docs())
}

async fn sync_all(devices: &mut [&mut Device]) {
    // Twice round, so that what each sent reaches every other.
    for _ in 0..2 {
        for device in devices.iter_mut() {
            sync_now(device).await;
        }
    }
}

#[tokio::test]
async fn every_section_reaches_the_partner_and_both_read_the_same_plan() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("plan-sections");
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;

    let need = add(
        &mut a,
        Section::Needs,
        vec![
            ("text", text("Quiet and a warm blanket")),
            ("domain", Field::choice(Domain::Physical)),
            ("closeness", Field::Int(3)),
            ("environment", text("dim light")),
            ("communication", text("few words")),
        ],
    )
    .await;
    let boundary = add(
        &mut a,
        Section::Boundaries,
        vec![
            ("statement", text("No talk about the session until the next morning")),
            ("firmness", Field::choice(Firmness::Hard)),
            ("scope", Field::choice(Scope::Cooldown)),
            ("status", Field::choice(Status::Active)),
        ],
    )
    .await;
    let water = add(
        &mut a,
        Section::Menu,
        vec![("title", text("Glass of water")), ("category", Field::choice(Category::Nourishment))],
    )
    .await;
    let first = ids::position_between(None, None);
    let step = add(
        &mut a,
        Section::Sequence,
        vec![
            ("title", text("Glass of water")),
            ("option", text(&water)),
            ("for", Field::choice(ForWhom::Both)),
            ("optional", Field::Bool(false)),
            ("position", Field::Str(first.clone())),
        ],
    )
    .await;
    add(
        &mut a,
        Section::Signals,
        vec![("name", text("yellow")), ("response", text("pause and ask"))],
    )
    .await;
    add(
        &mut a,
        Section::Vocabulary,
        vec![("term", text("drop")), ("meaning", text("a low mood after"))],
    )
    .await;
    add(&mut a, Section::Questions, vec![("text", text("What helped you?"))]).await;
    add(&mut a, Section::Later, vec![("when", text("the next morning"))]).await;
    add(&mut a, Section::Techniques, vec![("title", text("Box breathing"))]).await;
    add(
        &mut a,
        Section::Spaces,
        vec![("place", text("the balcony")), ("for", Field::choice(ForWhom::A))],
    )
    .await;
    a.edit(DocId::Shared, |tx| {
        write::set_setting(tx, "checkin", "window_minutes", Field::Int(30))?;
        write::set_setting(tx, "deescalation", "reflection_limit_minutes", Field::Int(20))?;
        Ok(())
    })
    .await
    .unwrap();

    sync_now(&mut a).await;
    sync_now(&mut b).await;
    // B answers with its own needs, boundaries and preferences, and moves
    // the shared sequence.
    prefer(&mut b, &water, Preference::AskMe).await;
    let b_boundary = add(
        &mut b,
        Section::Boundaries,
        vec![
            ("statement", text("Ask before touching my face")),
            ("firmness", Field::choice(Firmness::Soft)),
            ("scope", Field::choice(Scope::Always)),
            ("status", Field::choice(Status::Active)),
        ],
    )
    .await;
    let before = ids::position_between(None, Some(&first));
    add(
        &mut b,
        Section::Sequence,
        vec![("title", text("Lie down together")), ("position", Field::Str(before))],
    )
    .await;
    sync_all(&mut [&mut a, &mut b]).await;

    let (pa, pb) = (read(&a), read(&b));
    assert_eq!(pa, pb, "both devices read the same plan");
    let alex = pa.a.as_ref().unwrap();
    assert_eq!(alex.needs[0].meta.id, need);
    assert_eq!(alex.needs[0].closeness, Some(3));
    assert_eq!(alex.boundaries[0].meta.id, boundary);
    assert_eq!(alex.boundaries[0].firmness, Firmness::Hard);
    assert_eq!(alex.boundaries[0].meta.created_by, Some(Partner::A));
    let sam = pa.b.as_ref().unwrap();
    assert_eq!(sam.preferences.get(&water), Some(&Preference::AskMe));
    assert_eq!(sam.boundaries[0].meta.id, b_boundary);
    let titles: Vec<&str> = pa.sequence.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(titles, ["Lie down together", "Glass of water"]);
    assert_eq!(pa.sequence[1].meta.id, step);
    assert_eq!(pa.sequence[1].option.as_deref(), Some(water.as_str()));
    assert_eq!(pa.signals[0].name, "yellow");
    assert_eq!(pa.vocabulary[0].term, "drop");
    assert_eq!(pa.checkin.window_minutes, Some(30));
    assert_eq!(pa.checkin.questions[0].text, "What helped you?");
    assert_eq!(pa.checkin.later[0].when, "the next morning");
    assert_eq!(pa.deescalation.reflection_limit_minutes, Some(20));
    assert_eq!(pa.deescalation.techniques[0].title, "Box breathing");
    assert_eq!(pa.deescalation.spaces[0].for_whom, ForWhom::A);
    assert!(pa.conflicts.is_empty());
}

/// Partner A on two devices (a1 offline from a2) and partner B.
async fn three(root: &TempDir, relay: &str) -> (Device, Device, Device) {
    let (mut a1, mut b) = couple(root, relay, relay).await;
    let (mut a2, _, _) = pair(&mut a1, root, "alex-tablet", relay, true).await;
    sync_all(&mut [&mut a1, &mut a2, &mut b]).await;
    (a1, a2, b)
}

#[tokio::test]
async fn concurrent_consent_values_resolve_to_the_most_restrictive_and_the_owner_sees_it() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("plan-merge");
    let (mut a1, mut a2, mut b) = three(&root, &relay.url).await;
    let boundary = add(
        &mut a1,
        Section::Boundaries,
        vec![
            ("statement", text("No surprises with cold water")),
            ("firmness", Field::choice(Firmness::Soft)),
            ("scope", Field::choice(Scope::Always)),
            ("status", Field::choice(Status::Active)),
        ],
    )
    .await;
    let option = add(&mut a1, Section::Menu, vec![("title", text("Music"))]).await;
    let other = add(&mut a1, Section::Menu, vec![("title", text("Tea"))]).await;
    sync_all(&mut [&mut a1, &mut a2, &mut b]).await;

    // Offline from each other, A's two devices disagree. (A value set to
    // what it already is makes no change, so each device changes it.)
    let set = |key: &'static str, value: &'static str| vec![(key, Field::Choice(value))];
    update(&mut a1, Section::Boundaries, &boundary, set("firmness", "hard")).await;
    update(&mut a2, Section::Boundaries, &boundary, set("firmness", "hard")).await;
    update(&mut a2, Section::Boundaries, &boundary, set("firmness", "soft")).await;
    update(&mut a1, Section::Boundaries, &boundary, set("status", "withdrawn")).await;
    update(&mut a1, Section::Boundaries, &boundary, set("status", "active")).await;
    update(&mut a2, Section::Boundaries, &boundary, set("status", "withdrawn")).await;
    prefer(&mut a1, &option, Preference::Yes).await;
    prefer(&mut a2, &option, Preference::No).await;
    prefer(&mut a1, &other, Preference::Yes).await;
    prefer(&mut a2, &other, Preference::Maybe).await;
    sync_all(&mut [&mut a1, &mut a2, &mut b]).await;

    for device in [&a1, &a2, &b] {
        let plan = read(device);
        let alex = plan.a.as_ref().unwrap();
        assert_eq!(alex.boundaries[0].firmness, Firmness::Hard, "hard wins over soft");
        assert_eq!(alex.boundaries[0].status, Status::Active, "a racing withdrawal is not taken");
        assert_eq!(alex.preferences[&option], Preference::No, "no wins over yes");
        assert_eq!(alex.preferences[&other], Preference::Maybe, "maybe wins over yes");
        let mut shown: Vec<(String, String)> =
            plan.conflicts.iter().map(|c| (c.field.clone(), c.kept.clone())).collect();
        shown.sort();
        assert_eq!(
            shown,
            [
                ("firmness".to_owned(), "hard".to_owned()),
                ("preference".to_owned(), "maybe".to_owned()),
                ("preference".to_owned(), "no".to_owned()),
                ("status".to_owned(), "active".to_owned()),
            ]
        );
        assert!(plan.conflicts.iter().all(|c| c.owner == Partner::A));
        assert!(plan.replaced.is_empty(), "consent values have their own rule");
    }

    // The owner resolves by setting the value again: the conflict is gone,
    // and their choice (even the less restrictive one) stands.
    update(
        &mut a2,
        Section::Boundaries,
        &boundary,
        vec![("firmness", Field::choice(Firmness::Soft))],
    )
    .await;
    update(
        &mut a2,
        Section::Boundaries,
        &boundary,
        vec![("status", Field::choice(Status::Withdrawn))],
    )
    .await;
    prefer(&mut a2, &option, Preference::Yes).await;
    prefer(&mut a2, &other, Preference::Yes).await;
    sync_all(&mut [&mut a1, &mut a2, &mut b]).await;
    for device in [&a1, &a2, &b] {
        let plan = read(device);
        assert!(plan.conflicts.is_empty(), "{:?}", plan.conflicts);
        let alex = plan.a.as_ref().unwrap();
        assert_eq!(alex.boundaries[0].firmness, Firmness::Soft);
        assert_eq!(alex.boundaries[0].status, Status::Withdrawn);
        assert_eq!(alex.preferences[&option], Preference::Yes);
    }
}

#[tokio::test]
async fn an_ordinary_value_set_on_two_devices_at_once_stays_visible_and_can_be_restored() {
    use cove_client::plan::replaced::{self, Stored};
    let relay = TestRelay::start().await;
    let root = TempDir::new("plan-replaced");
    let (mut a1, mut a2, mut b) = three(&root, &relay.url).await;
    let option = add(&mut a1, Section::Menu, vec![("title", text("Tea"))]).await;
    let need = add(&mut a1, Section::Needs, vec![("text", text("Quiet"))]).await;
    sync_all(&mut [&mut a1, &mut a2, &mut b]).await;

    // Each device offline from the others: A and B retitle the option and
    // set the check-in window; A's two devices word A's need differently.
    let window = |minutes| {
        move |tx: &mut automerge::transaction::Transaction<'_>| {
            write::set_setting(tx, "checkin", "window_minutes", Field::Int(minutes))
                .map_err(Into::into)
        }
    };
    update(&mut a1, Section::Menu, &option, vec![("title", text("Warm tea"))]).await;
    update(&mut b, Section::Menu, &option, vec![("title", text("Green tea"))]).await;
    a1.edit(DocId::Shared, window(45)).await.unwrap();
    b.edit(DocId::Shared, window(20)).await.unwrap();
    update(&mut a1, Section::Needs, &need, vec![("environment", text("Dim light"))]).await;
    update(&mut a2, Section::Needs, &need, vec![("environment", text("A dark room"))]).await;
    sync_all(&mut [&mut a1, &mut a2, &mut b]).await;

    let plan = read(&b);
    for device in [&a1, &a2] {
        assert_eq!(read(device).replaced, plan.replaced, "every device sees the same");
    }
    let mut fields: Vec<&str> = plan.replaced.iter().map(|r| r.field.as_str()).collect();
    fields.sort();
    assert_eq!(fields, ["environment", "title", "window_minutes"], "{:?}", plan.replaced);
    let title = plan.replaced.iter().find(|r| r.field == "title").unwrap();
    let kept = plan.menu[0].title.clone();
    assert_eq!(title.kept, Stored::Str(kept.clone()));
    let lost = if kept == "Warm tea" { "Green tea" } else { "Warm tea" };
    assert_eq!(title.replaced, [Stored::Str(lost.into())]);
    assert_eq!(
        title.sentence(None),
        format!(
            "Menu option \"{kept}\", Title: changed on both devices at once: kept \"{kept}\", replaced \"{lost}\"."
        )
    );
    let setting = plan.replaced.iter().find(|r| r.field == "window_minutes").unwrap();
    assert_eq!(Some(setting.kept.clone()), plan.checkin.window_minutes.map(Stored::Int));
    let need_replaced = plan.replaced.iter().find(|r| r.field == "environment").unwrap();
    assert_eq!(need_replaced.owner, Some(Partner::A));
    assert!(
        need_replaced.sentence(Some("Alex's")).starts_with("Alex's need \"Quiet\", Surroundings"),
        "{}",
        need_replaced.sentence(Some("Alex's"))
    );

    // B puts the replaced title back, and the window too; A's need is A's
    // to settle, so B is refused and A's tablet restores it.
    let which =
        replaced::find_one(&plan.replaced, Partner::B, None, &option[20..], "title").unwrap();
    replaced::restore(&mut b, which, &Stored::Str(lost.into())).await.unwrap();
    let which =
        replaced::find_one(&plan.replaced, Partner::B, None, "checkin", "window_minutes").unwrap();
    let other = setting.replaced[0].clone();
    replaced::restore(&mut b, which, &other).await.unwrap();
    let refused = replaced::restore(&mut b, need_replaced, &need_replaced.replaced[0]).await;
    assert!(
        matches!(
            refused,
            Err(cove_client::device::DeviceError::NotYours { partner: Partner::A, .. })
        ),
        "only A's devices: {refused:?}"
    );
    let not_replaced =
        replaced::restore(&mut a2, need_replaced, &Stored::Str("Noise".into())).await;
    assert!(not_replaced.is_err(), "only a value that was replaced is put back");
    let wording = need_replaced.replaced[0].clone();
    replaced::restore(&mut a2, need_replaced, &wording).await.unwrap();
    sync_all(&mut [&mut a1, &mut a2, &mut b]).await;

    for device in [&a1, &a2, &b] {
        let plan = read(device);
        assert!(plan.replaced.is_empty(), "{:?}", plan.replaced);
        assert_eq!(plan.menu[0].title, lost);
        assert_eq!(plan.checkin.window_minutes.map(Stored::Int), Some(other.clone()));
        assert_eq!(
            plan.a.as_ref().unwrap().needs[0].environment.clone().map(Stored::Str),
            Some(wording.clone())
        );
    }
}

#[tokio::test]
async fn an_edit_that_races_an_archive_survives_and_the_item_can_be_restored() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("plan-archive");
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    let option = add(&mut a, Section::Menu, vec![("title", text("Blanket"))]).await;
    sync_all(&mut [&mut a, &mut b]).await;

    let who = author(&a);
    a.edit(DocId::Shared, |tx| write::archive(tx, who, Section::Menu, &option).map_err(Into::into))
        .await
        .unwrap();
    update(&mut b, Section::Menu, &option, vec![("title", text("The heavy blanket"))]).await;
    sync_all(&mut [&mut a, &mut b]).await;

    for device in [&a, &b] {
        let plan = read(device);
        assert_eq!(plan.menu.len(), 1);
        assert!(plan.menu[0].meta.archived());
        assert_eq!(plan.menu[0].meta.archived_by, Some(Partner::A));
        assert_eq!(plan.menu[0].title, "The heavy blanket", "the racing edit is kept");
    }
    b.edit(DocId::Shared, |tx| write::restore(tx, Section::Menu, &option).map_err(Into::into))
        .await
        .unwrap();
    sync_all(&mut [&mut a, &mut b]).await;
    let plan = read(&a);
    assert!(!plan.menu[0].meta.archived());
    assert_eq!(plan.menu[0].title, "The heavy blanket");
}

#[tokio::test]
async fn a_change_to_the_other_partners_document_is_refused_on_every_receiving_device() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("plan-owner");
    // B's first device is the one that misbehaves.
    let (mut a1, mut b) = couple(&root, &relay.url, &relay.url).await;
    let (mut b2, _, _) = pair(&mut b, &root, "sam-tablet", &relay.url, true).await;
    let boundary = add(
        &mut a1,
        Section::Boundaries,
        vec![
            ("statement", text("No tickling")),
            ("firmness", Field::choice(Firmness::Hard)),
            ("scope", Field::choice(Scope::Always)),
            ("status", Field::choice(Status::Active)),
        ],
    )
    .await;
    sync_all(&mut [&mut a1, &mut b2, &mut b]).await;

    // B's device, modified, writes a withdrawal into A's document, signed
    // and sealed as a member device would.
    let change = {
        let mut fork = b.docs().get(DocId::PartnerA).fork().with_actor(actor_of(&b.id()));
        let mut tx = fork.transaction();
        let (_, map) = tx.get(automerge::ROOT, "boundaries").unwrap().unwrap();
        let (_, item) = tx.get(&map, boundary.as_str()).unwrap().unwrap();
        tx.put(&item, "status", "withdrawn").unwrap();
        tx.put(&item, "firmness", "soft").unwrap();
        tx.commit();
        fork.get_last_local_change().unwrap().clone()
    };
    let sealed = b.seal_unchecked(DocId::PartnerA, &[change]).unwrap();
    assert_eq!(sealed.len(), 1);
    // The relay refuses to store it.
    let (conn, _pushes) = cove_client::sync::connect(&b).await.unwrap();
    let pushed = conn.push(b.plan(), &sealed[0]).await;
    assert!(pushed.is_err(), "the relay stored a change to the other partner's document");

    // A relay that stored it anyway, and served it to every other device:
    // each refuses it on its own, and quarantines it.
    for device in [&mut a1, &mut b2] {
        let before = device.quarantined();
        let item = StoredEnvelope {
            cursor: Cursor(device.cursor().0 + 1),
            envelope: sealed[0].clone().into(),
        };
        let received = device.receive(vec![item]).await.unwrap();
        assert_eq!(received.applied, [0, 0, 0]);
        assert_eq!(device.quarantined(), before + 1);
    }
    for device in [&a1, &b2] {
        let plan = read(device);
        let alex = plan.a.as_ref().unwrap();
        assert_eq!(alex.boundaries[0].status, Status::Active);
        assert_eq!(alex.boundaries[0].firmness, Firmness::Hard);
    }
}

#[tokio::test]
async fn the_review_diff_attributes_each_change_to_the_partner_who_made_it() {
    use cove_client::plan::review;
    let relay = TestRelay::start().await;
    let root = TempDir::new("plan-review");
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    let tea = add(&mut a, Section::Menu, vec![("title", text("Tea"))]).await;
    sync_all(&mut [&mut a, &mut b]).await;
    // The review records each document's heads.
    let since = DocId::ALL.map(|d| a.docs().get(d).get_heads());

    let music = add(&mut a, Section::Menu, vec![("title", text("Music"))]).await;
    update(&mut b, Section::Menu, &tea, vec![("title", text("Chamomile tea"))]).await;
    prefer(&mut b, &tea, Preference::Yes).await;
    add(
        &mut b,
        Section::Boundaries,
        vec![
            ("statement", text("No phones in the room")),
            ("firmness", Field::choice(Firmness::Hard)),
        ],
    )
    .await;
    let who = author(&a);
    a.edit(DocId::Shared, |tx| write::archive(tx, who, Section::Menu, &music).map_err(Into::into))
        .await
        .unwrap();
    sync_all(&mut [&mut a, &mut b]).await;

    for device in [&a, &b] {
        let plan = read(device);
        let docs = DocId::ALL.map(|d| device.docs().get(d));
        let changes = review::changes_since(docs, &since, device.membership(), &plan);
        let by = |needle: &str| -> Vec<Option<Partner>> {
            changes.iter().filter(|c| c.summary.contains(needle)).map(|c| c.by).collect()
        };
        assert_eq!(by("added menu option"), [Some(Partner::A)], "{changes:#?}");
        assert_eq!(by("archived menu option"), [Some(Partner::A)]);
        assert_eq!(by("changed the title"), [Some(Partner::B)]);
        assert_eq!(by("preference for \"Chamomile tea\" to yes"), [Some(Partner::B)]);
        assert_eq!(by("added their boundary"), [Some(Partner::B)], "{changes:#?}");
        // Nothing from before the review: Tea's creation is not listed.
        assert_eq!(by("from \"Tea\""), [Some(Partner::B)]);
        assert!(by(": \"Tea\"").is_empty(), "{changes:#?}");
        assert_eq!(changes.len(), 5, "{changes:#?}");
    }
}

#[tokio::test]
async fn a_signal_is_kept_only_while_it_is_current() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("plan-signal");
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    // Both devices read one clock that moves only when the test says.
    let clock = ManualClock::now();
    a.set_clock(Arc::new(clock.clone()));
    b.set_clock(Arc::new(clock.clone()));
    // One that has expired by the time it arrives, one that has not.
    a.signal("pause", 1).await.unwrap();
    a.signal("check-on-me", 600_000).await.unwrap();
    sync_now(&mut a).await;
    clock.advance(5);
    let report = sync_now(&mut b).await;
    assert_eq!(report.signals.len(), 2, "both are delivered, and reported");
    let kept: Vec<&str> =
        b.sync_state().signals().iter().map(|s| s.signal.signal.as_str()).collect();
    assert_eq!(kept, ["check-on-me"], "only the current one is stored");
    // What is stored is what was kept.
    let reopened =
        Device::open_with_clock(b.home(), PASSPHRASE, Arc::new(clock.clone())).await.unwrap();
    assert_eq!(reopened.sync_state().signals().len(), 1);

    // One that expires while it is stored goes when the device is next
    // opened, without waiting for some other change to be written.
    a.signal("space", 400).await.unwrap();
    sync_now(&mut a).await;
    sync_now(&mut b).await;
    assert_eq!(b.sync_state().signals().len(), 2);
    drop(b);
    clock.advance(400);
    let b = Device::open_with_clock(reopened.home(), PASSPHRASE, Arc::new(clock.clone()))
        .await
        .unwrap();
    assert_eq!(b.sync_state().signals().len(), 2, "not yet past its time to live");
    drop(b);
    clock.advance(1);
    let b = Device::open_with_clock(reopened.home(), PASSPHRASE, Arc::new(clock.clone()))
        .await
        .unwrap();
    let kept: Vec<&str> =
        b.sync_state().signals().iter().map(|s| s.signal.signal.as_str()).collect();
    assert_eq!(kept, ["check-on-me"]);
}

#[tokio::test]
async fn a_preference_does_not_carry_over_to_an_option_the_other_partner_changed() {
    let relay = TestRelay::start().await;
    let root = TempDir::new("plan-basis");
    let (mut a, mut b) = couple(&root, &relay.url, &relay.url).await;
    let option = add(&mut b, Section::Menu, vec![("title", text("A glass of water"))]).await;
    let other = add(&mut b, Section::Menu, vec![("title", text("Quiet"))]).await;
    sync_all(&mut [&mut a, &mut b]).await;
    prefer(&mut a, &option, Preference::Yes).await;
    prefer(&mut a, &other, Preference::No).await;
    sync_all(&mut [&mut a, &mut b]).await;
    assert!(read(&a).changed_options.is_empty());

    // B retitles both options A gave a preference for.
    update(&mut b, Section::Menu, &option, vec![("title", text("Holding or cuddling"))]).await;
    update(&mut b, Section::Menu, &other, vec![("description", text("no talking"))]).await;
    sync_all(&mut [&mut a, &mut b]).await;
    for device in [&a, &b] {
        let plan = read(device);
        let alex = plan.a.as_ref().unwrap();
        assert_eq!(alex.preferences[&option], Preference::AskMe, "a yes for something else");
        assert_eq!(alex.preferences[&other], Preference::No, "a no stays a no");
        let changed: Vec<(&str, Preference)> =
            plan.changed_options.iter().map(|c| (c.option.as_str(), c.given)).collect();
        assert_eq!(changed.len(), 2, "{changed:?}");
        assert!(changed.contains(&(option.as_str(), Preference::Yes)));
    }
    // A gives it again, for the option as it reads now.
    prefer(&mut a, &option, Preference::Yes).await;
    prefer(&mut a, &other, Preference::No).await;
    sync_all(&mut [&mut a, &mut b]).await;
    let plan = read(&b);
    assert!(plan.changed_options.is_empty(), "{:?}", plan.changed_options);
    assert_eq!(plan.a.as_ref().unwrap().preferences[&option], Preference::Yes);
}
