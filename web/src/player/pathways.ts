// Which content steering pathway (edge) a segment came from. The session's manifests name each pathway with
// its base URI (DASH: <BaseURL serviceLocation="edge-a">http://.../v/title/</BaseURL>; HLS: STREAM-INF with
// PATHWAY-ID="edge-a" followed by the variant's URI), so a segment's URL maps back to its pathway by prefix.

export class PathwayMap {
  private prefixes: { prefix: string; id: string }[] = [];

  /** Learns the pathways of a DASH MPD or an HLS multivariant playlist; the manifest's own URL resolves them. */
  learn(manifest: string, manifestUrl: string): void {
    const found = manifest.trimStart().startsWith("#EXTM3U")
      ? PathwayMap.fromHls(manifest, manifestUrl)
      : PathwayMap.fromDash(manifest, manifestUrl);
    for (const entry of found) {
      if (!this.prefixes.some((p) => p.prefix === entry.prefix)) this.prefixes.push(entry);
    }
    // The longest prefix wins when base URIs nest.
    this.prefixes.sort((a, b) => b.prefix.length - a.prefix.length);
  }

  /** The pathway id serving `url`, or "" when no manifest named its base. */
  pathwayOf(url: string): string {
    return this.prefixes.find((p) => url.startsWith(p.prefix))?.id ?? "";
  }

  private static fromDash(mpd: string, base: string): { prefix: string; id: string }[] {
    const doc = new DOMParser().parseFromString(mpd, "application/xml");
    return [...doc.getElementsByTagName("BaseURL")].flatMap((el) => {
      const id = el.getAttribute("serviceLocation");
      const text = el.textContent?.trim();
      return id && text ? [{ prefix: new URL(text, base).href, id }] : [];
    });
  }

  private static fromHls(playlist: string, base: string): { prefix: string; id: string }[] {
    const out: { prefix: string; id: string }[] = [];
    const lines = playlist.split(/\r?\n/);
    for (let i = 0; i < lines.length; i++) {
      const id = /PATHWAY-ID="([^"]+)"/.exec(lines[i])?.[1];
      if (!id) continue;
      // STREAM-INF: the URI is the next line; EXT-X-MEDIA and I-FRAME-STREAM-INF carry URI="...".
      const inline = /URI="([^"]+)"/.exec(lines[i])?.[1];
      const uri = inline ?? (lines[i].startsWith("#EXT-X-STREAM-INF") ? lines[i + 1]?.trim() : undefined);
      if (!uri) continue;
      // The edge's base is the variant URI up to the title directory: .../v/{title}/{rendition}/index.m3u8.
      const absolute = new URL(uri, base);
      absolute.search = "";
      const parts = absolute.pathname.split("/");
      absolute.pathname = parts.slice(0, Math.max(1, parts.length - 2)).join("/") + "/";
      out.push({ prefix: absolute.href, id });
    }
    return out;
  }
}
