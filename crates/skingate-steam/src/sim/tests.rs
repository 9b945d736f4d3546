use std::sync::atomic::{AtomicI64, Ordering};

use super::*;

struct Fixture {
    clock: Arc<AtomicI64>,
    steam: Simulator,
}

fn fixture() -> Fixture {
    let clock = Arc::new(AtomicI64::new(1_000_000));
    let c = clock.clone();
    Fixture { clock, steam: Simulator::new(3, Arc::new(move || c.load(Ordering::SeqCst))) }
}

impl Fixture {
    fn advance(&self, secs: i64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }

    fn user(&self, n: u64) -> SteamId {
        SteamId::from_account_id(n).unwrap()
    }

    fn url(&self, user: SteamId) -> TradeUrl {
        TradeUrl::new(user, &self.steam.trade_token(user)).unwrap()
    }

    async fn tradable(&self, user: SteamId, n: usize) -> Vec<u64> {
        let inv = self.steam.inventory(user, Game::Cs2).await.unwrap();
        inv.iter().filter(|a| a.tradable).take(n).map(|a| a.asset_id).collect()
    }

    async fn send(&self, user: SteamId, items: Vec<u64>) -> Result<OfferId, SteamError> {
        self.steam
            .send_offer(NewOffer {
                partner: self.url(user),
                game: Game::Cs2,
                items_to_receive: items,
                items_to_give: vec![],
            })
            .await
    }

    /// Observes until two observations in a row agree (a gateway never trusts one).
    async fn settled(&self, id: OfferId) -> Offer {
        let mut last = self.steam.offer(id).await.unwrap();
        loop {
            let next = self.steam.offer(id).await.unwrap();
            if next.state == last.state {
                return next;
            }
            last = next;
        }
    }
}

#[tokio::test]
async fn default_payer_accepts_and_items_move() {
    let f = fixture();
    let user = f.user(11);
    let items = f.tradable(user, 2).await;
    let before = f.steam.inventory(user, Game::Cs2).await.unwrap().len();
    let id = f.send(user, items.clone()).await.unwrap();
    assert_eq!(f.steam.offer(id).await.unwrap().state, OfferState::Active);
    // Items in an open offer cannot be offered again.
    assert_eq!(f.send(user, items[..1].to_vec()).await, Err(SteamError::InvalidItems));
    f.advance(10);
    let offer = f.settled(id).await;
    assert_eq!((offer.state, offer.trade_status), (OfferState::Accepted, Some(TradeStatus::Complete)));
    assert_eq!(f.steam.inventory(user, Game::Cs2).await.unwrap().len(), before - 2);
}

#[tokio::test]
async fn tokens_items_and_bans_are_checked() {
    let f = fixture();
    let user = f.user(12);
    let items = f.tradable(user, 1).await;
    let wrong = TradeUrl::new(user, "AAAAAAAA").unwrap();
    let offer = NewOffer { partner: wrong, game: Game::Cs2, items_to_receive: items.clone(), items_to_give: vec![] };
    assert_eq!(f.steam.send_offer(offer).await, Err(SteamError::InvalidToken));
    let old = f.url(user);
    f.steam.regenerate_token(user);
    let stale = NewOffer { partner: old, game: Game::Cs2, items_to_receive: items.clone(), items_to_give: vec![] };
    assert_eq!(f.steam.send_offer(stale).await, Err(SteamError::InvalidToken));
    assert_eq!(f.send(user, vec![1]).await, Err(SteamError::InvalidItems), "not owned");
    assert_eq!(f.send(user, vec![]).await, Err(SteamError::InvalidItems), "nothing asked");
    assert_eq!(f.send(user, vec![items[0], items[0]]).await, Err(SteamError::InvalidItems), "twice");
    let untradable = f.steam.inventory(user, Game::Cs2).await.unwrap().into_iter().find(|a| !a.tradable);
    if let Some(a) = untradable {
        assert_eq!(f.send(user, vec![a.asset_id]).await, Err(SteamError::InvalidItems));
    }
    assert!(f.send(user, items).await.is_ok(), "the new token works");
    let banned = f.user(13);
    f.steam.set_profile(banned, Profile::TradeBanned);
    assert_eq!(f.steam.escrow_days(&f.url(banned)).await, Err(SteamError::TradeBanned));
    let items = f.tradable(banned, 1).await;
    assert_eq!(f.send(banned, items).await, Err(SteamError::TradeBanned));
}

#[tokio::test]
async fn declines_expiry_and_cancel_return_the_items() {
    let f = fixture();
    let (a, b, c) = (f.user(21), f.user(22), f.user(23));
    f.steam.set_profile(a, Profile::Decline);
    f.steam.set_profile(b, Profile::NeverAnswer);
    f.steam.set_profile(c, Profile::NeverAnswer);
    let (ia, ib, ic) = (f.tradable(a, 1).await, f.tradable(b, 1).await, f.tradable(c, 1).await);
    let (oa, ob, oc) =
        (f.send(a, ia.clone()).await.unwrap(), f.send(b, ib).await.unwrap(), f.send(c, ic.clone()).await.unwrap());
    f.advance(3);
    assert_eq!(f.settled(oa).await.state, OfferState::Declined);
    assert!(f.send(a, ia).await.is_ok(), "declined items can be offered again");
    f.steam.cancel_offer(oc).await.unwrap();
    assert_eq!(f.settled(oc).await.state, OfferState::Canceled);
    assert!(f.send(c, ic).await.is_ok());
    f.advance(OFFER_EXPIRY_SECS);
    assert_eq!(f.settled(ob).await.state, OfferState::Expired);
    assert_eq!(f.steam.cancel_offer(ob).await, Err(SteamError::NotFound), "only active offers cancel");
}

#[tokio::test]
async fn trade_protection_reversal_and_escrow() {
    let f = fixture();
    let (r, e) = (f.user(31), f.user(32));
    f.steam.set_profile(r, Profile::ReverseAfter { accept_after: 5, reverse_after: 2 * 86_400 });
    f.steam.set_profile(e, Profile::Escrow { days: 3 });
    assert_eq!(f.steam.escrow_days(&f.url(e)).await, Ok(3));
    let stale = TradeUrl::new(e, "WRONGtok").unwrap();
    assert_eq!(f.steam.escrow_days(&stale).await, Err(SteamError::InvalidToken), "only the current token");
    let items = f.tradable(r, 1).await;
    let or = f.send(r, items.clone()).await.unwrap();
    let oe = f.send(e, f.tradable(e, 1).await).await.unwrap();
    f.advance(5);
    let accepted = f.settled(or).await;
    assert_eq!((accepted.state, accepted.trade_status), (OfferState::Accepted, Some(TradeStatus::Complete)));
    let held = f.settled(oe).await;
    assert_eq!((held.state, held.trade_status), (OfferState::InEscrow, Some(TradeStatus::InEscrow)));
    assert!(!f.steam.inventory(r, Game::Cs2).await.unwrap().iter().any(|a| a.asset_id == items[0]));
    f.advance(2 * 86_400);
    let reversed = f.settled(or).await;
    assert_eq!(reversed.trade_status, Some(TradeStatus::TradeProtectionRollback));
    assert!(f.steam.inventory(r, Game::Cs2).await.unwrap().iter().any(|a| a.asset_id == items[0]), "items back");
    f.advance(86_400);
    let escrowed = f.settled(oe).await;
    assert_eq!(escrowed.state, OfferState::Accepted);
    assert!(escrowed.escrow_ends_at.is_some());
}

#[tokio::test]
async fn operator_surface_and_flapping() {
    let f = fixture();
    let u = f.user(41);
    f.steam.set_profile(u, Profile::Manual);
    let ids: Vec<OfferId> = {
        let items = f.tradable(u, 5).await;
        let mut ids = Vec::new();
        for item in items {
            ids.push(f.send(u, vec![item]).await.unwrap());
        }
        ids
    };
    f.advance(OFFER_EXPIRY_SECS - 1);
    assert_eq!(f.steam.offer(ids[0]).await.unwrap().state, OfferState::Active, "manual payers wait");
    f.steam.decline(ids[0]).unwrap();
    assert_eq!(f.settled(ids[0]).await.state, OfferState::Declined);
    // One of five consecutive offers flaps once after acceptance: 3, then 2, then 3 for good.
    let mut flapped = 0;
    for id in &ids[1..] {
        f.steam.accept(*id).unwrap();
        let first = f.steam.offer(*id).await.unwrap().state;
        if first == OfferState::Active {
            flapped += 1;
        }
        assert_eq!(f.steam.offer(*id).await.unwrap().state, OfferState::Accepted);
    }
    assert_eq!(flapped, 1);
    f.steam.reverse(ids[1]).unwrap();
    assert_eq!(f.settled(ids[1]).await.trade_status, Some(TradeStatus::TradeProtectionRollback));
    assert_eq!(f.steam.reverse(ids[1]), Err(Irreversible::AlreadyReversed), "once");
    assert_eq!(f.steam.reverse(999), Err(Irreversible::NotFound));
    assert_eq!(f.steam.reverse(ids[0]), Err(Irreversible::NotAccepted), "declined");
    f.advance(TRADE_PROTECTION_SECS);
    assert_eq!(f.steam.reverse(ids[2]), Err(Irreversible::ProtectionOver));
    assert_eq!(f.steam.accept(999), Err(SteamError::NotFound));
}

#[tokio::test]
async fn bots_give_items_and_either_side_can_reverse() {
    let f = fixture();
    let user = f.user(77);
    let stock = f.steam.simulation().inventory(f.user(1), Game::Cs2);
    let give = vec![stock[0].clone()];
    let offer =
        NewOffer { partner: f.url(user), game: Game::Cs2, items_to_receive: vec![], items_to_give: give.clone() };
    let id = f.steam.send_offer(offer).await.unwrap();
    let sent = f.steam.offer(id).await.unwrap();
    assert_eq!(sent.items_to_give, give);
    assert!(f.steam.bots().contains(&sent.bot), "sent by one of the bots");
    assert_eq!(sent.expires_at, sent.created_at + OFFER_EXPIRY_SECS);
    f.advance(11);
    let accepted = f.settled(id).await;
    assert_eq!(accepted.state, OfferState::Accepted);
    f.steam.reverse_by(id, Party::Bot).unwrap();
    let reversed = f.steam.offer(id).await.unwrap();
    assert_eq!(reversed.trade_status, Some(TradeStatus::TradeProtectionRollback));
    assert_eq!(reversed.reversed_by, Some(Party::Bot));
    assert_eq!(f.steam.reverse_by(id, Party::Partner), Err(Irreversible::AlreadyReversed), "once");
}

#[tokio::test]
async fn send_failures_counters_and_change_listener() {
    let f = fixture();
    let (failing, countering) = (f.user(78), f.user(79));
    f.steam.set_profile(failing, Profile::SendFails);
    let items = f.tradable(failing, 1).await;
    assert_eq!(f.send(failing, items).await, Err(SteamError::Unavailable));
    f.steam.set_profile(countering, Profile::Counter);
    let id = f.send(countering, f.tradable(countering, 1).await).await.unwrap();
    f.advance(3);
    assert_eq!(f.settled(id).await.state, OfferState::Countered);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    f.steam.add_listener(Arc::new(move |id| s.lock().unwrap().push(id)));
    let manual = f.user(80);
    f.steam.set_profile(manual, Profile::Manual);
    let id = f.send(manual, f.tradable(manual, 1).await).await.unwrap();
    f.steam.decline(id).unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![id, id], "told when sent and when declined");
    assert_eq!(f.steam.profile(manual), Profile::Manual);
}

#[tokio::test]
async fn snapshot_restores_offers_profiles_and_moved_items() {
    let f = fixture();
    let user = f.user(81);
    f.steam.set_profile(user, Profile::Manual);
    let items = f.tradable(user, 1).await;
    let id = f.send(user, items.clone()).await.unwrap();
    let (version, json) = f.steam.snapshot();
    assert!(version > 0);
    let records = f.steam.take_unsaved_offers();
    assert_eq!(records.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![id]);
    assert!(f.steam.take_unsaved_offers().is_empty(), "taken once");
    let c = f.clock.clone();
    let again = Simulator::new(3, Arc::new(move || c.load(Ordering::SeqCst)));
    assert_eq!(again.restore(Some(&json), records.iter().map(|(_, r)| r.as_str())).unwrap(), 0);
    assert_eq!(again.profile(user), Profile::Manual);
    assert_eq!(again.offer(id).await.unwrap().state, OfferState::Active);
    let inv = again.inventory(user, Game::Cs2).await.unwrap();
    assert!(!inv.iter().any(|a| a.asset_id == items[0]), "the offered item is still out of the inventory");
    again.accept(id).unwrap();
    assert_eq!(again.offer(id).await.unwrap().state, OfferState::Accepted);
    assert!(again.version() > 0);
}

/// The bots' sent offers to one user since a time, newest first: what the gateway searches for an offer it
/// sent but could not record.
#[tokio::test]
async fn sent_offers_lists_one_users_offers_since_a_time_newest_first() {
    let f = fixture();
    let (a, b) = (f.user(7001), f.user(7002));
    let a_items = f.tradable(a, 3).await;
    let b_items = f.tradable(b, 1).await;
    let first = f.send(a, vec![a_items[0]]).await.unwrap();
    f.advance(10);
    let since = f.clock.load(Ordering::SeqCst);
    let second = f.send(a, vec![a_items[1]]).await.unwrap();
    let _other = f.send(b, vec![b_items[0]]).await.unwrap();
    let third = f.send(a, vec![a_items[2]]).await.unwrap();
    assert_eq!(f.steam.sent_offers(a, 0).await.unwrap(), vec![third, second, first]);
    assert_eq!(f.steam.sent_offers(a, since).await.unwrap(), vec![third, second]);
    assert!(f.steam.sent_offers(f.user(7003), 0).await.unwrap().is_empty());
}

/// Looking again at an old failed offer never hands back an item a newer offer holds: one item, one trade.
#[tokio::test]
async fn a_failed_offer_gives_its_items_back_once() {
    let f = fixture();
    let u = f.user(501);
    f.steam.set_profile(u, Profile::Decline);
    let item = f.tradable(u, 1).await;
    let declined = f.send(u, item.clone()).await.unwrap();
    f.advance(3);
    assert_eq!(f.steam.offer(declined).await.unwrap().state, OfferState::Declined);
    f.steam.set_profile(u, Profile::AcceptAfter { secs: 10 });
    let holder = f.send(u, item.clone()).await.unwrap();
    f.steam.offer(declined).await.unwrap(); // a watcher's second look at the declined offer
    assert_eq!(f.send(u, item.clone()).await, Err(SteamError::InvalidItems), "the item is in an open offer");
    f.advance(10);
    assert_eq!(f.settled(holder).await.state, OfferState::Accepted);
    f.steam.offer(declined).await.unwrap();
    assert!(!f.tradable(u, 40).await.contains(&item[0]), "traded away for good");
}

/// Profiles that would make impossible histories are recognised (the operator surface refuses them).
#[test]
fn impossible_profiles_are_refused() {
    assert!(Profile::AcceptAfter { secs: 0 }.check().is_ok());
    assert!(Profile::AcceptAfter { secs: -1 }.check().is_err());
    assert!(Profile::ReverseAfter { accept_after: 5, reverse_after: 3_600 }.check().is_ok());
    assert!(Profile::ReverseAfter { accept_after: 5, reverse_after: -60 }.check().is_err());
    assert!(Profile::ReverseAfter { accept_after: 5, reverse_after: TRADE_PROTECTION_SECS }.check().is_err());
    assert!(Profile::Escrow { days: 15 }.check().is_ok());
    assert!(Profile::Escrow { days: 400 }.check().is_err());
}

/// Looking at an offer that nothing happens to is not a change the saver has to write.
#[tokio::test]
async fn plain_reads_are_not_changes() {
    let f = fixture();
    let u = f.user(502);
    f.steam.set_profile(u, Profile::Manual);
    let item = f.tradable(u, 1).await;
    let o = f.send(u, item).await.unwrap();
    let before = f.steam.version();
    for _ in 0..3 {
        assert_eq!(f.steam.offer(o).await.unwrap().state, OfferState::Active);
    }
    assert_eq!(f.steam.version(), before);
    f.steam.decline(o).unwrap();
    assert!(f.steam.version() > before, "a decision is a change");
}

/// A snapshot saved before offers recorded their release: on restore, an old declined offer whose item a
/// newer offer holds is settled as released without handing that item back, so a later look cannot either.
#[tokio::test]
async fn a_snapshot_from_before_releases_were_recorded_never_frees_a_held_item() {
    let f = fixture();
    let u = f.user(503);
    f.steam.set_profile(u, Profile::Decline);
    let item = f.tradable(u, 1).await;
    let declined = f.send(u, item.clone()).await.unwrap();
    f.advance(3);
    f.steam.offer(declined).await.unwrap();
    f.steam.set_profile(u, Profile::Manual);
    let holder = f.send(u, item.clone()).await.unwrap();
    // The snapshot as the old code wrote it: every offer inside, without a `released` field.
    let (_, json) = f.steam.snapshot();
    let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
    let offers: Vec<serde_json::Value> = f
        .steam
        .take_unsaved_offers()
        .into_iter()
        .map(|(id, record)| {
            let mut record: serde_json::Value = serde_json::from_str(&record).unwrap();
            record.as_object_mut().unwrap().remove("released");
            serde_json::json!([id, record])
        })
        .collect();
    old["offers"] = offers.into();
    f.steam.restore(Some(&old.to_string()), std::iter::empty()).unwrap();
    // Offers only the old snapshot held are due to be saved as records (new snapshots hold none).
    let due: Vec<OfferId> = f.steam.take_unsaved_offers().into_iter().map(|(id, _)| id).collect();
    assert_eq!(due, vec![declined, holder]);
    f.steam.offer(declined).await.unwrap();
    assert!(!f.tradable(u, 40).await.contains(&item[0]), "still held by the open offer");
    assert_eq!(f.send(u, item).await, Err(SteamError::InvalidItems));
    assert_eq!(f.steam.offer(holder).await.unwrap().state, OfferState::Active);
}

/// Trade Protection covers CS2 only: a Rust trade cannot be reversed, by the operator or by a profile.
#[tokio::test]
async fn only_cs2_trades_can_be_reversed() {
    let f = fixture();
    let u = f.user(504);
    f.steam.set_profile(u, Profile::ReverseAfter { accept_after: 5, reverse_after: 60 });
    let inv = f.steam.inventory(u, Game::Rust).await.unwrap();
    let item = inv.iter().find(|a| a.tradable).unwrap().asset_id;
    let offer = f
        .steam
        .send_offer(NewOffer {
            partner: f.url(u),
            game: Game::Rust,
            items_to_receive: vec![item],
            items_to_give: vec![],
        })
        .await
        .unwrap();
    f.advance(120);
    let settled = f.settled(offer).await;
    assert_eq!((settled.state, settled.trade_status), (OfferState::Accepted, Some(TradeStatus::Complete)));
    assert_eq!(f.steam.reverse(offer), Err(Irreversible::NotProtected));
}

/// A crash: the simulator comes back from a snapshot older than its offers and the offer records saved since.
/// Every recorded trade is there as it was: accepted trades stay accepted and their items stay out of the
/// payer's inventory (Steam never forgets a trade); a record that does not parse is skipped and counted.
#[tokio::test]
async fn offer_records_bring_back_every_trade_after_a_crash() {
    let f = fixture();
    let u = f.user(504);
    let (_, before) = f.steam.snapshot();
    let items = f.tradable(u, 2).await;
    let accepted = f.send(u, vec![items[0]]).await.unwrap();
    f.advance(11);
    assert_eq!(f.settled(accepted).await.state, OfferState::Accepted);
    f.steam.set_profile(u, Profile::Manual);
    let open = f.send(u, vec![items[1]]).await.unwrap();
    let mut records: Vec<String> = f.steam.take_unsaved_offers().into_iter().map(|(_, r)| r).collect();
    records.push("{not json".into());
    let c = f.clock.clone();
    let again = Simulator::new(3, Arc::new(move || c.load(Ordering::SeqCst)));
    assert_eq!(again.restore(Some(&before), records.iter().map(String::as_str)).unwrap(), 1, "one skipped");
    assert_eq!(again.offer(accepted).await.unwrap().state, OfferState::Accepted);
    assert_eq!(again.offer(open).await.unwrap().state, OfferState::Active);
    let inventory: Vec<u64> = again.inventory(u, Game::Cs2).await.unwrap().iter().map(|a| a.asset_id).collect();
    assert!(!inventory.contains(&items[0]) && !inventory.contains(&items[1]), "traded and held items stay out");
    let resend =
        NewOffer { partner: f.url(u), game: Game::Cs2, items_to_receive: vec![items[0]], items_to_give: vec![] };
    assert_eq!(again.send_offer(resend.clone()).await, Err(SteamError::InvalidItems), "an item is traded once");
    let fresh = f.tradable(u, 1).await;
    let next = again.send_offer(NewOffer { items_to_receive: fresh, ..resend }).await.unwrap();
    assert!(next > open, "offer ids go on after the saved ones");
}
