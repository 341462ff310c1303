export {
  FRAME_HEADER_SIZE,
  Flag,
  FrameType,
  HELLO_MAGIC,
  MAX_STREAM_ID,
  MAX_WINDOW,
  PROTOCOL_VERSION,
  WireError,
} from "./constants.js";
export { ERRORS, PosternError, isPosternError, type ErrorCode } from "./errors.js";
export { FrameDecoder, FrameWriter, encodeFrame, type DecoderLimits, type FrameSink } from "./frame.js";
export {
  decodeHello,
  decodeRequestHead,
  decodeResponseHead,
  decodeSettingsUpdate,
  encodeHello,
  encodeRequestHead,
  encodeResponseHead,
  encodeSettingsUpdate,
  type HeaderList,
  type Hello,
  type RequestHead,
  type ResponseHead,
  type Settings,
  type SettingsUpdate,
} from "./heads.js";
