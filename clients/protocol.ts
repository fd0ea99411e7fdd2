/**
 * `streamgrad/protocol`: the streamgrad server's protocol v1 as a client sees it,
 * browser-safe (no Node built-ins): the message types, close and error codes, the parser
 * of server messages and the decoder of binary parameter/gradient frames. A browser page
 * opens its own `WebSocket` (the page's origin authorises it; commands need `auth` with
 * the token); Node programs use `streamgrad/client`, which reconnects and retries.
 *
 * @example
 * import { parseServerMessage, tryDecodeFrame } from 'streamgrad/protocol';
 * const socket = new WebSocket(`ws://${location.host}/ws`);
 * socket.binaryType = 'arraybuffer';
 * socket.onmessage = (e) => console.log(typeof e.data === 'string' ? parseServerMessage(e.data) : tryDecodeFrame(e.data));
 *
 * @packageDocumentation
 */
export {
  CHANNELS, CLOSE, COMMAND_TYPES, PROTOCOL_VERSION,
  type AckMessage, type AuthMessage, type Channel, type ClientMessage, type CommandMessage, type CommandType, type ErrorMessage,
  type EventMessage, type HelloMessage, type HistoryMessage, type HistoryResult, type MetricsMessage, type PredictionsMessage,
  type ProtocolErrorCode, type RunInfo, type RunMessage, type RunRemovedMessage, type ServerMessage, type SubscribeMessage,
  type UnsubscribeMessage, type PredictMessage, type PredictionMessage, type PredictionMeta, type PredictionResult,
  type PredictionFailure, type VersionCommandMessage,
} from '../server/protocol.ts';
export { parseServerMessage } from './node/server-message.ts';
export {
  decodeFrame, FRAME_DTYPE, FRAME_KIND, FrameError, tryDecodeFrame,
  type DecodedFrame, type FrameDtype, type FrameKind, type FrameLayer,
} from '../server/snapshot-frame.ts';
