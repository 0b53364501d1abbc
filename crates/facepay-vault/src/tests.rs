use std::sync::Arc;

use facepay_connector::simulator::printed_security_code;
use facepay_connector::{
    ConnectorError, Decline, SimulatedIssuer, SimulatorConfig, StoredCredential,
};
use facepay_store::testing;
use zeroize::Zeroizing;

use crate::{
    KeyPart, LocalVault, NewCard, Tokenized, Unlock, Vault, VaultAuthorise, VaultError, VaultVerify,
};

fn card(pan: &str) -> NewCard {
    NewCard {
        pan: Zeroizing::new(pan.to_owned()),
    }
}

fn authorise(token: &str, core_share: &[u8], amount_minor: i64) -> VaultAuthorise {
    VaultAuthorise {
        token: token.to_owned(),
        core_share: Zeroizing::new(core_share.to_vec()),
        expiry_month: 12,
        expiry_year: 2099,
        reference: facepay_store::ids::new("pay").unwrap(),
        amount_minor,
        currency: "KRW".into(),
        tap: None,
        stored_credential: None,
    }
}

fn verify(card: &Tokenized, security_code: &str) -> VaultVerify {
    VaultVerify {
        token: card.token.clone(),
        core_share: Zeroizing::new(card.core_share.to_vec()),
        expiry_month: 12,
        expiry_year: 2099,
        security_code: Zeroizing::new(security_code.to_owned()),
        reference: facepay_store::ids::new("pm").unwrap(),
        customer: "usr_1".into(),
        currency: "KRW".into(),
        agreed_at_ms: 1_767_225_600_000,
    }
}

/// The card verified with the code printed on it, as when its holder adds it.
async fn verified(vault: &LocalVault, card: &Tokenized, pan: &str) -> StoredCredential {
    let verified = vault
        .verify(verify(card, printed_security_code(pan)))
        .await
        .unwrap();
    verified.outcome.unwrap()
}

/// A payment on file: the card's share, its credential, no security code.
fn on_file(card: &Tokenized, credential: &StoredCredential, amount_minor: i64) -> VaultAuthorise {
    VaultAuthorise {
        stored_credential: Some(credential.clone()),
        ..authorise(&card.token, &card.core_share, amount_minor)
    }
}

#[tokio::test]
async fn cards_pay_only_with_both_shares_and_an_unlocked_vault() {
    let dir = tempfile::tempdir().unwrap();
    for store in testing::vault_stores(dir.path()).await.unwrap() {
        let issuer = Arc::new(SimulatedIssuer::new(SimulatorConfig::default()));
        let vault = LocalVault::new(store.clone(), issuer.clone());
        let (a, b) = (KeyPart::generate().unwrap(), KeyPart::generate().unwrap());

        assert!(matches!(
            vault.tokenize(card("4242424242424242")).await,
            Err(VaultError::Locked)
        ));
        assert_eq!(
            vault
                .give_part(KeyPart::from_hex(&a.to_hex()).unwrap())
                .await
                .unwrap(),
            Unlock::AwaitingSecondPart
        );
        assert!(!vault.is_unlocked(), "one custodian cannot open the vault");
        assert_eq!(
            vault
                .give_part(KeyPart::from_hex(&b.to_hex()).unwrap())
                .await
                .unwrap(),
            Unlock::Unlocked
        );

        let visa = vault.tokenize(card("4242424242424242")).await.unwrap();
        let again = vault.tokenize(card("4242424242424242")).await.unwrap();
        assert_eq!(
            visa.fingerprint, again.fingerprint,
            "same card, same fingerprint"
        );
        assert_ne!(visa.token, again.token);
        assert_ne!(visa.core_share, again.core_share, "a fresh pad each time");
        assert_eq!(visa.core_share.len(), 16);
        assert!(!String::from_utf8_lossy(&visa.core_share).contains("424242"));
        let other = vault.tokenize(card("5555555555554444")).await.unwrap();
        assert_ne!(other.fingerprint, visa.fingerprint);

        let unverified = vault
            .authorise(authorise(&visa.token, &visa.core_share, 4_500))
            .await
            .unwrap();
        assert!(
            matches!(unverified.outcome, Err(ConnectorError::NeedsVerification)),
            "a card on file pays only once verified"
        );
        let visa_credential = verified(&vault, &visa, "4242424242424242").await;
        let approved = vault
            .authorise(on_file(&visa, &visa_credential, 4_500))
            .await
            .unwrap();
        assert!(approved.outcome.is_ok());
        // Another card's share, or a share with one bit flipped, does not join.
        for wrong in [again.core_share.to_vec(), {
            let mut flipped = visa.core_share.to_vec();
            flipped[3] ^= 1;
            flipped
        }] {
            assert!(matches!(
                vault.authorise(authorise(&visa.token, &wrong, 4_500)).await,
                Err(VaultError::ShareMismatch)
            ));
        }
        assert!(matches!(
            vault
                .authorise(authorise(&visa.token, &visa.core_share[1..], 4_500))
                .await,
            Err(VaultError::ShareMismatch)
        ));
        let poor = vault.tokenize(card("4000000000009995")).await.unwrap();
        let poor_credential = verified(&vault, &poor, "4000000000009995").await;
        let declined = vault
            .authorise(on_file(&poor, &poor_credential, 4_500))
            .await
            .unwrap();
        assert!(matches!(
            declined.outcome,
            Err(ConnectorError::Declined(Decline::InsufficientFunds))
        ));
        assert!(matches!(
            vault.tokenize(card("42424242x")).await,
            Err(VaultError::BadCard)
        ));

        vault.forget(visa.token.clone()).await.unwrap();
        assert!(matches!(
            vault
                .authorise(authorise(&visa.token, &visa.core_share, 4_500))
                .await,
            Err(VaultError::UnknownToken)
        ));

        // A restarted vault is locked, and opens with these parts only.
        let again_credential = verified(&vault, &again, "4242424242424242").await;
        let restarted = LocalVault::new(store.clone(), issuer);
        assert!(matches!(
            restarted
                .authorise(authorise(&again.token, &again.core_share, 1))
                .await,
            Err(VaultError::Locked)
        ));
        assert!(matches!(
            restarted.unlock(&a, &KeyPart::generate().unwrap()).await,
            Err(VaultError::KeyParts(_))
        ));
        restarted.unlock(&b, &a).await.unwrap();
        assert!(
            restarted
                .authorise(on_file(&again, &again_credential, 1))
                .await
                .unwrap()
                .outcome
                .is_ok()
        );
        restarted.lock();
        assert!(!restarted.is_unlocked());
    }
}

#[tokio::test]
async fn a_card_is_verified_once_with_its_code_which_nothing_keeps() {
    let dir = tempfile::tempdir().unwrap();
    for store in testing::vault_stores(dir.path()).await.unwrap() {
        let issuer = Arc::new(SimulatedIssuer::new(SimulatorConfig::default()));
        let vault = LocalVault::new(store.clone(), issuer);
        vault
            .unlock(&KeyPart::generate().unwrap(), &KeyPart::generate().unwrap())
            .await
            .unwrap();
        let amex = vault.tokenize(card("378282246310005")).await.unwrap();
        let wrong = vault.verify(verify(&amex, "737")).await.unwrap();
        assert!(
            matches!(
                wrong.outcome,
                Err(ConnectorError::Declined(Decline::IncorrectSecurityCode))
            ),
            "Amex codes have four digits"
        );
        let credential = verified(&vault, &amex, "378282246310005").await;
        assert_eq!(credential.connector, "simulated_issuer");
        let paid = vault.authorise(on_file(&amex, &credential, 700)).await;
        assert!(paid.unwrap().outcome.is_ok());
        // Another card's share does not join, so nothing is sent.
        let visa = vault.tokenize(card("4242424242424242")).await.unwrap();
        let mut mixed = verify(&amex, "7373");
        mixed.core_share = Zeroizing::new(visa.core_share.to_vec());
        assert!(matches!(
            vault.verify(mixed).await,
            Err(VaultError::ShareMismatch)
        ));
    }
}
