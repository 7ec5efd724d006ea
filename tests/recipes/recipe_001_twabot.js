'use strict';
// shared/seeds/001 (TwaBot), "Signature Verification > How to verify (Node.js example)",
// as printed. The route reads req.body as an object, so the app parses JSON
// (app.use(express.json()), which the example takes for granted). The only
// change: the example's literal 'your_webhook_secret' is the webhook's secret.
const { express, createApp } = require('./express_shim');

const app = createApp();
app.use(express.json());
const YOUR_WEBHOOK_SECRET = process.env.WEBHOOK_SECRET;

const crypto = require('crypto');
function verifySignature(payload, signature, secret) {
const expected = crypto
.createHmac('sha256', secret)
.update(JSON.stringify(payload))
.digest('hex');
return signature === expected;
}
// In your Express route handler:
app.post('/webhooks/twabot', (req, res) => {
const signature = req.headers['x-twabot-signature'];
const isValid = verifySignature(req.body, signature, YOUR_WEBHOOK_SECRET);
if (!isValid) {
console.error('Invalid webhook signature!');
return res.status(401).send('Unauthorized');
}
// Process the event
const { event, data } = req.body;
console.log('Received event:', event, data);
res.status(200).send('OK');
});

app.handle();
