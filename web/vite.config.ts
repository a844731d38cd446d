import { defineConfig } from "vite";

// The gateway serves dist/ at the site root (with a fallback to index.html for the app's routes), and answers
// gRPC-web on the same origin, so the app needs no proxy or base URL of its own.
export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: true,
    // Shaka Player is one large, already minified module: its own chunk, loaded when a title is opened.
    chunkSizeWarningLimit: 900,
  },
});
