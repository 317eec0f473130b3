import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// `npm run dev` proxies the API to a local `berth server` (BERTH_SERVER, default :7700).
const server = process.env.BERTH_SERVER ?? "http://127.0.0.1:7700";

export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 800 },
  server: { proxy: { "/api": { target: server, changeOrigin: false } } },
});
