// The signed-in state: the account, the chosen profile and the current token pair, kept in localStorage so a
// reload stays signed in. Access tokens are short-lived; they are renewed with the rotating refresh token
// shortly before they expire (one refresh at a time: a refresh token spent twice revokes the whole session).
// This browser is a device of the account: registered once per account (RegisterDevice, within the plan's
// devices) and remembered across sign-outs, its profile tokens are bound to it (SelectProfile with the device),
// which downloads need. At the plan's device limit the browser still plays, without a device (no downloads).

import { timestampMs } from "@bufbuild/protobuf/wkt";
import { accounts, Code, ConnectError, configureAuth } from "./api";
import type { Profile, TokenPair } from "./gen/marquee/v1/accounts_pb";
import { DeviceType } from "./gen/marquee/v1/common_pb";

const STORAGE_KEY = "marquee.session";
const DEVICES_KEY = "marquee.devices"; // account name -> this browser's device name
const RENEW_BEFORE_MS = 60_000;

interface Tokens {
  access: string;
  accessExpiresAt: number; // ms since the epoch
  refresh: string;
}

export interface SessionProfile {
  name: string; // accounts/{account}/profiles/{profile}
  displayName: string;
  kids: boolean;
}

interface SessionState {
  account: string; // accounts/{account}
  email: string;
  tokens: Tokens;
  profile?: SessionProfile;
  device?: string; // accounts/{account}/devices/{device}: the one the profile's tokens are bound to
}

let state: SessionState | null = load();
let refreshing: Promise<void> | null = null;
const listeners = new Set<() => void>();

function load(): SessionState | null {
  try {
    const raw = localStorage.getItem(STORAGE_KEY);
    return raw ? (JSON.parse(raw) as SessionState) : null;
  } catch {
    return null;
  }
}

function save(next: SessionState | null): void {
  state = next;
  if (next) localStorage.setItem(STORAGE_KEY, JSON.stringify(next));
  else localStorage.removeItem(STORAGE_KEY);
  for (const fn of listeners) fn();
}

function tokensOf(pair: TokenPair | undefined): Tokens {
  if (!pair) throw new Error("the server sent no tokens");
  return {
    access: pair.accessToken,
    accessExpiresAt: pair.accessTokenExpireTime ? timestampMs(pair.accessTokenExpireTime) : Date.now() + 60_000,
    refresh: pair.refreshToken,
  };
}

/** Called when the signed-in state changes (sign in, profile chosen, sign out). */
export function onSessionChange(fn: () => void): void {
  listeners.add(fn);
}

export function signedIn(): boolean {
  return state !== null;
}

export function currentAccount(): { name: string; email: string } | null {
  return state ? { name: state.account, email: state.email } : null;
}

export function currentProfile(): SessionProfile | null {
  return state?.profile ?? null;
}

/** The profile's id (the last segment of its name), used in rating names. */
export function profileId(): string {
  return state?.profile?.name.split("/").pop() ?? "";
}

export async function signIn(email: string, password: string): Promise<void> {
  const reply = await accounts.signIn({ email, password });
  save({ account: reply.account?.name ?? "", email: reply.account?.email ?? email, tokens: tokensOf(reply.tokens) });
}

/** Whether choosing `profile` needs the account password: leaving a kids profile does. */
export function needsPassword(profile: Profile): boolean {
  const current = state?.profile;
  return current !== undefined && current.kids && current.name !== profile.name;
}

/** This browser's device of the signed-in account, when it has one. */
export function currentDevice(): string {
  return state?.device ?? "";
}

function knownDevices(): Record<string, string> {
  try {
    return JSON.parse(localStorage.getItem(DEVICES_KEY) ?? "{}") as Record<string, string>;
  } catch {
    return {};
  }
}

function rememberDevice(account: string, device: string): void {
  const devices = knownDevices();
  if (device) devices[account] = device;
  else delete devices[account];
  localStorage.setItem(DEVICES_KEY, JSON.stringify(devices));
}

function browserName(): string {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua)
    ? "Edge"
    : /Firefox\//.test(ua)
      ? "Firefox"
      : /Chrome\//.test(ua)
        ? "Chrome"
        : "Safari";
  return `${browser} browser`;
}

/** This browser's device of the account: the remembered one, or a new registration; "" when the account may not
 * register one (its plan's device limit, or a kids profile's token). */
async function deviceOf(account: string): Promise<string> {
  const known = knownDevices()[account];
  if (known) return known;
  try {
    const reply = await accounts.registerDevice({
      parent: account,
      device: { displayName: browserName(), type: DeviceType.BROWSER },
    });
    const name = reply.device?.name ?? "";
    rememberDevice(account, name);
    return name;
  } catch (err) {
    const code = err instanceof ConnectError ? err.code : undefined;
    if (code === Code.ResourceExhausted || code === Code.PermissionDenied) return "";
    throw err;
  }
}

/** Issues tokens bound to `profile` and this browser's device (the refresh token is rotated into them: the same
 * session); `password` is the account's, needed to leave a kids profile. */
export async function selectProfile(profile: Profile, password = ""): Promise<void> {
  if (!state) throw new Error("not signed in");
  const select = (device: string) =>
    accounts.selectProfile({ profile: profile.name, refreshToken: state?.tokens.refresh ?? "", password, device });
  let device = await deviceOf(state.account);
  let reply;
  try {
    reply = await select(device);
  } catch (err) {
    // the remembered device was removed (from another device's settings): register this browser again
    if (!(device && err instanceof ConnectError && err.code === Code.NotFound)) throw err;
    rememberDevice(state.account, "");
    device = await deviceOf(state.account);
    reply = await select(device);
  }
  save({
    ...state,
    tokens: tokensOf(reply.tokens),
    profile: { name: profile.name, displayName: profile.displayName, kids: profile.kids },
    device: device || undefined,
  });
}

export async function signOut(): Promise<void> {
  const refresh = state?.tokens.refresh;
  save(null);
  if (refresh) {
    try {
      await accounts.signOut({ refreshToken: refresh });
    } catch {
      // The local session is gone either way.
    }
  }
}

/** Forgets the session without calling the server (its tokens were refused). */
export function dropSession(): void {
  save(null);
}

async function renewNow(): Promise<void> {
  // Another tab may have renewed while this one waited for the lock: its pair is in storage.
  const stored = load();
  if (stored && state && stored.tokens.refresh !== state.tokens.refresh && stored.account === state.account) {
    state = stored;
    return;
  }
  const current = state;
  if (!current) return;
  try {
    const reply = await accounts.refreshTokens({ refreshToken: current.tokens.refresh });
    if (state === current) save({ ...current, tokens: tokensOf(reply.tokens) });
  } catch (err) {
    save(null);
    throw err;
  }
}

/** One renewal at a time across the tabs of this origin (Web Locks where the page is a secure context). */
function renew(): Promise<void> {
  return navigator.locks
    ? navigator.locks.request("marquee.refresh", () => renewNow()).then(() => undefined)
    : renewNow();
}

/** A valid access token, renewed first when it is about to expire; "" when signed out. */
export async function accessToken(): Promise<string> {
  if (!state) return "";
  if (state.tokens.accessExpiresAt - Date.now() < RENEW_BEFORE_MS) {
    refreshing ??= renew().finally(() => (refreshing = null));
    await refreshing;
  }
  return state?.tokens.access ?? "";
}

export function initAuth(unauthenticated: () => void): void {
  configureAuth(accessToken, () => {
    dropSession();
    unauthenticated();
  });
  // Another tab signed in or out: follow it.
  window.addEventListener("storage", (event) => {
    if (event.key === STORAGE_KEY) {
      state = load();
      for (const fn of listeners) fn();
    }
  });
}
