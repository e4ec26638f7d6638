/** Tool-call governance: validation of model-proposed calls and assembly of streamed call deltas. */
export { validateToolCall, toolAllowed, toolSchemaCacheSize, type OfferedTool, type ToolCall, type ToolValidationOptions } from './validate.js';
export { createToolCallAssembler, assembleToolCallDeltas, type AssembledToolCall, type OpenAIToolCallDelta, type AnthropicToolEvent, type ToolCallAssembler, type AssemblerLimits } from './assemble.js';
export { toolArgumentStrings, detectTaint, type ArgumentString, type TaintOptions } from './arguments.js';
