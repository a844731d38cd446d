// Runs hls.js's own content steering logic (ContentSteeringController, M3U8Parser, FetchLoader) in Node on a
// multivariant playlist and the steering server it names, and prints what hls.js made of each steering
// manifest as one JSON line. Usage: node hls_steering.mjs MASTER_FILE MASTER_URL ROUNDS
import { readFileSync } from 'node:fs';
import Hls, { ContentSteeringController, Events, FetchLoader, Level, M3U8Parser } from 'hls.js';

globalThis.self ??= globalThis; // hls.js is written for browsers and workers

const [masterFile, masterUrl, roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg || 1);
const parsed = M3U8Parser.parseMasterPlaylist(readFileSync(masterFile, 'utf8'), masterUrl);
if (!parsed.contentSteering) {
  console.log(JSON.stringify({ error: 'hls.js found no EXT-X-CONTENT-STEERING in the playlist' }));
  process.exit(1);
}

const noop = () => {};
const handlers = new Map();
const hls = {
  logger: { trace: noop, debug: noop, log: noop, info: noop, warn: noop, error: noop },
  config: { ...Hls.DefaultConfig, loader: FetchLoader },
  bandwidthEstimate: Number(process.env.HLS_BANDWIDTH || 5000000),
  levels: [],
  nextLoadLevel: 0,
  media: { ended: false }, // hls.js reloads the steering manifest only while media is attached
  on(event, fn, ctx) {
    if (!handlers.has(event)) handlers.set(event, []);
    handlers.get(event).push(fn.bind(ctx));
  },
  off: noop,
  trigger(event, data) {
    for (const fn of handlers.get(event) || []) fn(event, data);
  },
};

const controller = new ContentSteeringController(hls);
let seen = 0;
hls.on(Events.STEERING_MANIFEST_LOADED, (_, data) => {
  // hls.js applies PATHWAY-PRIORITY right after this event: read the outcome on the next turn
  setImmediate(() => {
    const levels = controller.levels || [];
    console.log(JSON.stringify({
      requested: data.url,
      manifest: data.steeringManifest,
      pathwayId: controller.pathwayId,
      pathwayPriority: controller.pathwayPriority,
      reloadUri: controller.uri,
      ttl: controller.timeToLoad,
      pathways: controller.pathways(),
      levelUrls: Object.fromEntries(
        controller.pathways().map((p) => [p, levels.filter((l) => l.pathwayId === p).map((l) => l.uri)]),
      ),
    }));
    if (++seen >= rounds) {
      controller.destroy();
    }
  });
});
hls.on(Events.LEVELS_UPDATED, (_, data) => {
  hls.levels = data.levels;
});

hls.trigger(Events.MANIFEST_LOADING, {});
hls.trigger(Events.MANIFEST_LOADED, { contentSteering: parsed.contentSteering, levels: parsed.levels });
hls.levels = controller.filterParsedLevels(parsed.levels.map((l) => new Level(l)));
hls.trigger(Events.MANIFEST_PARSED, { audioTracks: [], subtitleTracks: [] });
console.log(JSON.stringify({ start: true, pathwayId: controller.pathwayId, uri: controller.uri }));
controller.startLoad();
