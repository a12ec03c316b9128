// addresses.*: iMessage availability follows the simulated directory (every valid address is
// on iMessage unless marked unreachable), get describes an address, isFocusSilenced is false.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Server, punctuatePhone, uniqueEmail, uniquePhone } from "../lib/harness.mjs";
import { Errors, expectError } from "../lib/expect.mjs";

describe("addresses", () => {
  /** @type {Server} */ let server;
  let me, alice;

  before(async () => {
    server = await Server.start();
    me = server.me();
    alice = await server.person("alice@example.com");
  });
  after(() => server?.cleanup());

  test("isIMessageAvailable: true for any reachable address, account or not", async () => {
    assert.equal(await me.client.addresses.isIMessageAvailable(alice.address), true);
    assert.equal(await me.client.addresses.isIMessageAvailable(uniqueEmail()), true);
    assert.equal(await me.client.addresses.isIMessageAvailable(uniquePhone()), true);
  });

  test("isIMessageAvailable: false once the address is marked unreachable", async () => {
    const gone = uniqueEmail("gone");
    assert.equal(await me.client.addresses.isIMessageAvailable(gone), true);
    await server.markUnreachable(gone);
    assert.equal(await me.client.addresses.isIMessageAvailable(gone), false);
    assert.equal(await alice.client.addresses.isIMessageAvailable(gone), false, "the directory is the same for everyone");
  });

  test("get: the normalised address and its services", async () => {
    const email = uniqueEmail("Mixed").replace("example.com", "Example.COM");
    const info = await me.client.addresses.get(email);
    assert.equal(info.address, email.toLowerCase());
    assert.ok(info.services.includes("iMessage"), JSON.stringify(info));
    const phone = uniquePhone();
    assert.equal((await me.client.addresses.get(punctuatePhone(phone))).address, phone);
  });

  test("get: an unreachable address has no services", async () => {
    const gone = uniqueEmail("gone");
    await server.markUnreachable(gone);
    assert.deepEqual((await me.client.addresses.get(gone)).services, []);
  });

  test("isFocusSilenced is false: the simulated network has no Focus modes", async () => {
    assert.equal(await me.client.addresses.isFocusSilenced(alice.address), false);
    assert.equal(await me.client.addresses.isFocusSilenced(uniquePhone()), false);
  });

  for (const method of ["get", "isFocusSilenced", "isIMessageAvailable"]) {
    test(`${method}: an address that does not parse -> invalidArgument field=address`, async () => {
      for (const bad of ["not-an-address", "5550001111", "bob@"]) {
        await expectError(me.client.addresses[method](bad), Errors.invalidArgument, { field: "address" });
      }
    });
  }
});
