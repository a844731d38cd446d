// Runs Shaka Player's own DASH parser (shaka.dash.DashParser, which drives its content steering manager) in Node
// on an MPD and the steering server its ContentSteering element names, and prints, as one JSON line, the URIs
// Shaka would try for the first video segment, in order. Usage: node dash_steering.cjs MPD_FILE
'use strict';
const { readFileSync } = require('node:fs');

// Shaka is written for browsers: the parser needs only a few of their globals.
globalThis.window = globalThis;
globalThis.self = globalThis;
globalThis.navigator = { userAgent: 'node', vendor: '' };
globalThis.document = {
  createElement: () => ({ canPlayType: () => '', getContext: () => null }),
  addEventListener() {},
  readyState: 'complete',
  documentElement: { style: {} },
  querySelectorAll: () => [],
};
globalThis.HTMLMediaElement = function HTMLMediaElement() {};
globalThis.addEventListener = () => {};

const shaka = require('shaka-player/dist/shaka-player.compiled.debug.js');
shaka.log.setLevel?.(0);

async function main() {
  const [mpdFile] = process.argv.slice(2);
  const mpd = readFileSync(mpdFile);
  const uri = `data:application/dash+xml;base64,${mpd.toString('base64')}`;
  const defaults = shaka.util.PlayerConfiguration.createDefault();
  const networking = new shaka.net.NetworkingEngine();
  networking.configure(defaults.networking);
  const config = defaults.manifest;
  const parser = new shaka.dash.DashParser();
  parser.configure(config);
  const errors = [];
  const playerInterface = {
    networkingEngine: networking,
    filter: async () => {},
    makeTextStreamsForClosedCaptions() {},
    onTimelineRegionAdded() {},
    onEvent() {},
    onError: (e) => errors.push(String(e)),
    isLowLatencyMode: () => false,
    isAutoLowLatencyMode: () => false,
    enableLowLatencyMode() {},
    updateDuration() {},
    newDrmInfo() {},
    onManifestUpdated() {},
    getBandwidthEstimate: () => 5000000,
    onMetadata() {},
    disableStream() {},
    addFont() {},
  };
  const manifest = await parser.start(uri, playerInterface);
  const video = manifest.variants[0].video;
  await video.createSegmentIndex();
  const first = video.segmentIndex.get(video.segmentIndex.find(0));
  console.log(JSON.stringify({ uris: first.getUris(), errors }));
  await parser.stop();
}

main().catch((e) => {
  console.log(JSON.stringify({ error: String(e && (e.stack || e)) }));
  process.exit(1);
});
