// The guide's Java example "For thinking models / DashScope / Java", its request body sent with the
// JDK's HttpClient (DashScopeHttp) in place of the DashScope Java SDK's streamCall, which is not
// reachable here. Changes are marked "changed:": the base URL comes from MULTITURN_BASE_URL, errors
// go to stderr (the guide logs them with slf4j), and the whole thinking and answer are printed as
// JSON at the end, for the test.
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

public class ThinkingStream {
    private static StringBuilder reasoningContent = new StringBuilder();
    private static StringBuilder finalContent = new StringBuilder();
    private static boolean isFirstPrint = true;

    private static void handleGenerationResult(Map<String, Object> message) {
        Map<String, Object> output = message == null ? null : Json.object(message.get("output"));
        List<Object> choices = output == null ? null : Json.array(output.get("choices"));
        if (choices != null && !choices.isEmpty() && Json.object(choices.get(0)).get("message") != null) {
            Map<String, Object> msg = Json.object(Json.object(choices.get(0)).get("message"));
            String reasoning = (String) msg.get("reasoning_content");
            String content = (String) msg.get("content");

            if (reasoning != null && !reasoning.isEmpty()) {
                reasoningContent.append(reasoning);
                if (isFirstPrint) {
                    System.out.println("====================Thinking Process====================");
                    isFirstPrint = false;
                }
                System.out.print(reasoning);
            }

            if (content != null && !content.isEmpty()) {
                finalContent.append(content);
                if (!isFirstPrint) {
                    System.out.println("\n====================Complete Response====================");
                    isFirstPrint = true;
                }
                System.out.print(content);
            }
        }
    }

    private static Map<String, Object> buildGenerationParam(List<Map<String, Object>> messages) {
        // .model("qwen-plus").enableThinking(true).messages(messages).incrementalOutput(true).resultFormat("message")
        Map<String, Object> parameters = new LinkedHashMap<>();
        parameters.put("enable_thinking", true);
        parameters.put("incremental_output", true);
        parameters.put("result_format", "message");
        Map<String, Object> input = new LinkedHashMap<>();
        input.put("messages", messages);
        Map<String, Object> param = new LinkedHashMap<>();
        param.put("model", "qwen-plus");
        param.put("input", input);
        param.put("parameters", parameters);
        return param;
    }

    public static void streamCallWithMessage(DashScopeHttp gen, List<Map<String, Object>> messages) throws Exception {
        Map<String, Object> param = buildGenerationParam(messages);
        gen.streamCall("/services/aigc/text-generation/generation", param, ThinkingStream::handleGenerationResult);
    }

    public static void main(String[] args) {
        try {
            // changed: was new Generation(Protocol.HTTP.getValue(), "https://dashscope-intl.aliyuncs.com/api/v1")
            DashScopeHttp gen = new DashScopeHttp(System.getenv("MULTITURN_BASE_URL"));
            Map<String, Object> userMsg1 = createMessage("user", "Hello");
            Map<String, Object> assistantMsg = createMessage("assistant", "Hello! Nice to meet you. Is there anything I can help you with?");
            Map<String, Object> userMsg2 = createMessage("user", "Who are you");
            List<Map<String, Object>> messages = Arrays.asList(userMsg1, assistantMsg, userMsg2);
            streamCallWithMessage(gen, messages);
            System.out.println();
            // changed: for the test
            System.out.println("RESULT " + Json.write(Arrays.asList(reasoningContent.toString(), finalContent.toString())));
        } catch (Exception e) {
            System.err.println("An exception occurred: " + e.getMessage()); // changed: was logger.error(...)
        } finally {
            // Ensure the program exits normally
            System.exit(0);
        }
    }

    private static Map<String, Object> createMessage(String role, String content) {
        Map<String, Object> message = new LinkedHashMap<>();
        message.put("role", role);
        message.put("content", content);
        return message;
    }
}
