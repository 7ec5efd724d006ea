'use strict';
// shared/seeds/003 (Twenty CRM, current docs), "Webhook Signatures > Verify Signature (Node.js)",
// as printed. The route reads req.body as an object, so the app parses JSON
// (app.use(express.json()), which the example takes for granted).
const { express, createApp } = require('./express_shim');

const app = createApp();
app.use(express.json());

const crypto = require('crypto');
function verifyWebhookSignature(payload, signature, secret, timestamp) {
// Reject old requests (prevent replay attacks)
const currentTime = Math.floor(Date.now() / 1000);
if (currentTime - timestamp > 300) { // 5 minutes
return false;
}
// Compute expected signature
const signedPayload = `${timestamp}.${JSON.stringify(payload)}`;
const expectedSignature = crypto
.createHmac('sha256', secret)
.update(signedPayload)
.digest('hex');
// Compare signatures
return crypto.timingSafeEqual(
Buffer.from(signature),
Buffer.from(`sha256=${expectedSignature}`)
);
}
// Express.js example
app.post('/webhook', (req, res) => {
const signature = req.headers['x-twenty-signature'];
const timestamp = req.headers['x-twenty-timestamp'];
const webhookSecret = process.env.TWENTY_WEBHOOK_SECRET;
if (!verifyWebhookSignature(req.body, signature, webhookSecret, timestamp)) {
return res.status(401).send('Invalid signature');
}
// Process webhook
console.log('Valid webhook:', req.body.operation);
res.sendStatus(200);
});

app.handle();
