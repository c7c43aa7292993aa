import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { PeerCertificate } from 'node:tls';
import { formatSpiffeId, isValidTrustDomain, parseSpiffeId, spiffeIdFromPeerCertificate, spiffeIdOfPeer } from './spiffe.js';
import { spiffeIdOfPem } from './spiffe-x509.js';
import { issue, newCa, spiffe } from './testing/helpers.js';

describe('SPIFFE IDs', () => {
  test('format and parse round-trip', () => {
    const id = { trustDomain: 'public', namespace: 'default', appId: 'orders' };
    assert.equal(formatSpiffeId(id), 'spiffe://public/ns/default/orders');
    assert.deepEqual(parseSpiffeId(formatSpiffeId(id)), id);
    assert.deepEqual(parseSpiffeId('spiffe://cluster.local/ns/prod-1/My_App.v2'), { trustDomain: 'cluster.local', namespace: 'prod-1', appId: 'My_App.v2' });
  });

  test('segments after the app id are allowed and ignored, as Dapr allows them', () => {
    assert.deepEqual(parseSpiffeId('spiffe://public/ns/default/orders/extra/more'), spiffe('orders'));
  });

  test('refuses anything not exactly spiffe://<td>/ns/<ns>/<app>', () => {
    for (const bad of [
      '',
      'spiffe://public',
      'spiffe://public/',
      'spiffe://public/default/orders', // no /ns
      'spiffe://public/ns/default', // no app id
      'spiffe://public/ns/default/', // empty app id
      'spiffe://public/ns//orders', // empty namespace
      'spiffe://public//ns/default/orders',
      'spiffe://public/ns/default/orders/', // trailing slash: empty segment
      'spiffe://public/ns/default/orders//x',
      'spiffe:///ns/default/orders', // empty trust domain
      'spiffe://Public/ns/default/orders', // upper case trust domain
      'spiffe://public:443/ns/default/orders', // port
      'spiffe://user@public/ns/default/orders', // user info
      'spiffe://public/ns/default/orders?x=1', // query
      'spiffe://public/ns/default/orders#frag', // fragment
      'spiffe://public/ns/default/ord%20ers', // percent-encoding
      'spiffe://public/ns/./orders',
      'spiffe://public/ns/../orders',
      'spiffe://public/NS/default/orders',
      'SPIFFE://public/ns/default/orders',
      'https://public/ns/default/orders',
      'urn:spiffe:public/ns/default/orders',
      ' spiffe://public/ns/default/orders',
      `spiffe://public/ns/default/${'a'.repeat(2048)}`,
    ]) {
      assert.equal(parseSpiffeId(bad), undefined, bad);
    }
  });

  test('trust domains', () => {
    assert.ok(isValidTrustDomain('public'));
    assert.ok(isValidTrustDomain('example.org'));
    assert.ok(!isValidTrustDomain(''));
    assert.ok(!isValidTrustDomain('Example.org'));
    assert.ok(!isValidTrustDomain('a b'));
  });
});

describe('spiffeIdFromPeerCertificate', () => {
  const peer = (subjectaltname: string | undefined): PeerCertificate => ({ subjectaltname }) as unknown as PeerCertificate;

  test('reads the one SPIFFE URI among other SANs', () => {
    assert.deepEqual(spiffeIdFromPeerCertificate(peer('URI:spiffe://public/ns/default/orders')), spiffe('orders'));
    assert.deepEqual(
      spiffeIdFromPeerCertificate(peer('DNS:localhost, DNS:dapr-sentry, URI:spiffe://localhost/ns/default/dapr-sentry, IP Address:127.0.0.1')),
      spiffe('dapr-sentry', 'default', 'localhost'),
    );
    assert.deepEqual(spiffeIdFromPeerCertificate(peer('URI:https://example.com/x, URI:spiffe://public/ns/a/b')), spiffe('b', 'a'));
    assert.deepEqual(spiffeIdFromPeerCertificate(peer('IP Address:FE80:0:0:0:0:0:0:1, URI:spiffe://public/ns/a/b')), spiffe('b', 'a'));
  });

  test('spiffeIdOfPeer: the same answer, for each certificate object, with or without an identity', () => {
    const orders = peer('URI:spiffe://public/ns/default/orders');
    const none = peer('DNS:localhost');
    for (let i = 0; i < 2; i++) {
      assert.deepEqual(spiffeIdOfPeer(orders), spiffe('orders'));
      assert.equal(spiffeIdOfPeer(none), undefined);
      assert.equal(spiffeIdOfPeer(undefined), undefined);
    }
    // Another connection's certificate is read for itself.
    assert.deepEqual(spiffeIdOfPeer(peer('URI:spiffe://public/ns/a/b')), spiffe('b', 'a'));
  });

  test('no certificate, no SAN, no SPIFFE URI: undefined', () => {
    assert.equal(spiffeIdFromPeerCertificate(undefined), undefined);
    assert.equal(spiffeIdFromPeerCertificate({} as PeerCertificate), undefined);
    assert.equal(spiffeIdFromPeerCertificate(peer(undefined)), undefined);
    assert.equal(spiffeIdFromPeerCertificate(peer('')), undefined);
    assert.equal(spiffeIdFromPeerCertificate(peer('DNS:localhost, IP Address:127.0.0.1')), undefined);
    assert.equal(spiffeIdFromPeerCertificate(peer('DNS:spiffe://public/ns/default/orders')), undefined); // not a URI SAN
  });

  test('two SPIFFE URIs are ambiguous: undefined', () => {
    assert.equal(spiffeIdFromPeerCertificate(peer('URI:spiffe://public/ns/default/a, URI:spiffe://public/ns/default/b')), undefined);
    assert.equal(spiffeIdFromPeerCertificate(peer('URI:spiffe://public/ns/default/a, URI:spiffe://public/ns/default/a')), undefined);
    assert.equal(spiffeIdFromPeerCertificate(peer('URI:SPIFFE://public/ns/default/a, URI:spiffe://public/ns/default/b')), undefined);
  });

  test('an invalid SPIFFE URI is not an identity', () => {
    assert.equal(spiffeIdFromPeerCertificate(peer('URI:spiffe://public/default/orders')), undefined);
    assert.equal(spiffeIdFromPeerCertificate(peer('URI:spiffe://public/ns/default/orders?admin=1')), undefined);
  });

  test('a quoted SAN (Node escapes values containing commas) cannot smuggle a second entry', () => {
    // A URI SAN whose value is `http://x, URI:spiffe://public/ns/default/admin` is printed quoted by Node.
    const crafted = 'URI:"http://x, URI:spiffe://public/ns/default/admin"';
    assert.equal(spiffeIdFromPeerCertificate(peer(crafted)), undefined);
    assert.deepEqual(spiffeIdFromPeerCertificate(peer(`${crafted}, URI:spiffe://public/ns/default/orders`)), spiffe('orders'));
    assert.deepEqual(spiffeIdFromPeerCertificate(peer('DNS:"a,b\\"c", URI:spiffe://public/ns/default/orders')), spiffe('orders'));
  });

  test('a malformed SAN string yields undefined rather than a guess', () => {
    assert.equal(spiffeIdFromPeerCertificate(peer('URI:"spiffe://public/ns/default/orders')), undefined); // unterminated quote
    assert.equal(spiffeIdFromPeerCertificate(peer('URI:spiffe://public/ns/default/orders,URI:x')), undefined);
    assert.equal(spiffeIdFromPeerCertificate(peer('URI:spiffe://public/ns/default/orders, ')), undefined);
    assert.equal(spiffeIdFromPeerCertificate(peer('spiffe')), undefined);
  });

  test('spiffeIdOfPem reads the first certificate of a chain', async () => {
    const { ca } = await newCa();
    const { cert } = await issue(ca, spiffe('orders', 'prod'));
    assert.deepEqual(spiffeIdOfPem(cert), spiffe('orders', 'prod'));
    assert.equal(spiffeIdOfPem(ca.trustAnchorsPem), undefined);
    assert.equal(spiffeIdOfPem(''), undefined);
  });
});
