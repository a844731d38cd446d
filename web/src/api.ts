// The gRPC-web clients. The gateway that serves this app answers gRPC-web on the same origin, so the transport
// points at the page's own origin; every call carries the current access token (see auth.ts).

import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import type { DescService } from "@bufbuild/protobuf";
import { AccountService } from "./gen/marquee/v1/accounts_pb";
import { CatalogService } from "./gen/marquee/v1/catalog_pb";
import { DownloadService } from "./gen/marquee/v1/download_pb";
import { PlaybackService } from "./gen/marquee/v1/playback_pb";
import { RecommendationService } from "./gen/marquee/v1/recommendations_pb";

/** Supplies the bearer token for a call (empty for public RPCs such as SignIn). */
export type TokenSource = () => Promise<string>;

let tokenSource: TokenSource = async () => "";
let onUnauthenticated: () => void = () => {};

/** Installs where access tokens come from and what to do when the server refuses them (sign in again). */
export function configureAuth(source: TokenSource, unauthenticated: () => void): void {
  tokenSource = source;
  onUnauthenticated = unauthenticated;
}

const PUBLIC_METHODS = new Set(["SignIn", "SignUp", "RefreshTokens", "SignOut", "ListPlans", "GetPlan"]);

const authInterceptor: Interceptor = (next) => async (req) => {
  if (!PUBLIC_METHODS.has(req.method.name)) {
    const token = await tokenSource();
    if (token) req.header.set("authorization", `Bearer ${token}`);
  }
  try {
    return await next(req);
  } catch (err) {
    if (err instanceof ConnectError && err.code === Code.Unauthenticated && !PUBLIC_METHODS.has(req.method.name)) {
      onUnauthenticated();
    }
    throw err;
  }
};

function transport(keepalive: boolean) {
  return createGrpcWebTransport({
    baseUrl: window.location.origin,
    interceptors: [authInterceptor],
    // Calls made while the page goes away (the last position, StopPlayback) must outlive it.
    fetch: keepalive ? (input, init) => globalThis.fetch(input, { ...init, keepalive: true }) : undefined,
  });
}

const live = transport(false);
const lasting = transport(true);

function client<S extends DescService>(service: S): Client<S> {
  return createClient(service, live);
}

export const accounts = client(AccountService);
export const catalog = client(CatalogService);
export const playback = client(PlaybackService);
export const downloads = client(DownloadService);
export const recommendations = client(RecommendationService);
/** PlaybackService over requests that survive the page being closed or reloaded. */
export const playbackOnExit = createClient(PlaybackService, lasting);
/** RecommendationService over requests that survive the page being closed or reloaded (its last row events). */
export const recommendationsOnExit = createClient(RecommendationService, lasting);

/** A message fit to show a person for a failed call. */
export function describeError(err: unknown): string {
  if (err instanceof ConnectError) {
    switch (err.code) {
      case Code.Unavailable:
        return "The service is unavailable right now. Try again in a moment.";
      case Code.DeadlineExceeded:
        return "The request took too long. Try again.";
      case Code.ResourceExhausted:
        return err.rawMessage || "Too many requests. Wait a moment and try again.";
      default:
        return err.rawMessage || err.message;
    }
  }
  return err instanceof Error ? err.message : String(err);
}

/** True for the errors a missing or unreachable optional service gives. */
export function isAbsentService(err: unknown): boolean {
  return err instanceof ConnectError && (err.code === Code.Unimplemented || err.code === Code.Unavailable);
}

export { Code, ConnectError };
