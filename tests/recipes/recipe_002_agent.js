'use strict';
// shared/seeds/002 (agent platform), "Signature Verification > Example (Node.js)",
// as printed. The route reads req.body as an object, so the app parses JSON
// (app.use(express.json()), which the example takes for granted).
const { express, createApp } = require('./express_shim');

const app = createApp();
app.use(express.json());

const crypto = require('crypto');
function verifyWebhookSignature(payload, signature, secret) {
const expectedSignature = crypto
.createHmac('sha256', secret)
.update(JSON.stringify(payload))
.digest('hex');
return crypto.timingSafeEqual(
Buffer.from(signature),
Buffer.from(expectedSignature)
);
}
app.post('/webhooks', (req, res) => {
const signature = req.headers['x-webhook-signature'];
const secret = process.env.WEBHOOK_SECRET;
if (!verifyWebhookSignature(req.body, signature, secret)) {
return res.status(401).json({ error: 'Invalid signature' });
}
// Process webhook...
res.status(200).json({ received: true });
});

app.handle();
