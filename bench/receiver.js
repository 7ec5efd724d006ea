// Benchmark receiver: answers every POST with 200 after DELAY_MS, counts
// requests and the most in flight at once, and reports them on GET /stats.
// Usage: node bench/receiver.js PORT [DELAY_MS]
const http = require("http");
const port = Number(process.argv[2] || 9900);
const delayMs = Number(process.argv[3] || 0);
let received = 0, inFlight = 0, maxInFlight = 0;
const arrivals = []; // [webhook-id, ms since epoch] when the request line arrived
const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url.startsWith("/stats")) {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ received, maxInFlight, inFlight }));
    return;
  }
  if (req.method === "GET" && req.url.startsWith("/arrivals")) {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify(arrivals));
    return;
  }
  if (req.method === "POST" && req.url.startsWith("/reset")) {
    received = 0; maxInFlight = 0; arrivals.length = 0;
    req.resume(); res.end("reset"); return;
  }
  const arrivedAt = Date.now() + (performance.timeOrigin % 1) ;
  inFlight++; if (inFlight > maxInFlight) maxInFlight = inFlight;
  if (req.url.startsWith("/record")) arrivals.push([req.headers["webhook-id"], Date.now()]);
  req.resume();
  req.on("end", () => {
    const answer = () => { received++; inFlight--; res.writeHead(200, { "Content-Length": "2" }); res.end("ok"); };
    if (delayMs > 0) setTimeout(answer, delayMs); else answer();
  });
});
server.keepAliveTimeout = 60000;
server.maxRequestsPerSocket = 0;
server.listen(port, "127.0.0.1", () => console.log(`receiver on ${port}, delay ${delayMs} ms`));
