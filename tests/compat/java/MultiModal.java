// The guide's Java example "For multimodal models / DashScope / Java", its request bodies sent with
// the JDK's HttpClient (DashScopeHttp) in place of the DashScope Java SDK's MultiModalConversation,
// which is not reachable here. Changed: the base URL comes from MULTITURN_BASE_URL (the guide sets
// Constants.baseHttpApiUrl).
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

public class MultiModal {
    private static final String modelName = "qwen3-vl-plus";

    public static void MultiRoundConversationCall() throws Exception {
        DashScopeHttp conv = new DashScopeHttp(System.getenv("MULTITURN_BASE_URL")); // changed: see above
        Map<String, Object> userMessage = createMessage("user", Arrays.asList(
                Collections.singletonMap("image", "https://help-static-aliyun-doc.aliyuncs.com/file-manage-files/zh-CN/20251031/ownrof/f26d201b1e3f4e62ab4a1fc82dd5c9bb.png"),
                Collections.singletonMap("text", "What products are shown in the image?")));
        List<Map<String, Object>> messages = new ArrayList<>();
        messages.add(userMessage);
        Map<String, Object> result = conv.call("/services/aigc/multimodal-generation/generation", param(messages));
        System.out.println("First round output: " + firstText(result)); // add the result to conversation
        messages.add(firstMessage(result));
        Map<String, Object> msg = createMessage("user", Arrays.asList(Collections.singletonMap("text", "What style are they?")));
        messages.add(msg);
        result = conv.call("/services/aigc/multimodal-generation/generation", param(messages));
        System.out.println("Second round output: " + firstText(result));
    }

    public static void main(String[] args) {
        try {
            MultiRoundConversationCall();
        } catch (Exception e) {
            System.out.println(e.getMessage());
        }
        System.exit(0);
    }

    // MultiModalConversationParam.builder().model(modelName).messages(messages): the SDK's body
    private static Map<String, Object> param(List<Map<String, Object>> messages) {
        Map<String, Object> input = new LinkedHashMap<>();
        input.put("messages", messages);
        Map<String, Object> param = new LinkedHashMap<>();
        param.put("model", modelName);
        param.put("input", input);
        param.put("parameters", new LinkedHashMap<String, Object>());
        return param;
    }

    private static Map<String, Object> createMessage(String role, List<?> content) {
        Map<String, Object> message = new LinkedHashMap<>();
        message.put("role", role);
        message.put("content", content);
        return message;
    }

    // result.getOutput().getChoices().get(0).getMessage()
    private static Map<String, Object> firstMessage(Map<String, Object> result) {
        Map<String, Object> output = Json.object(result.get("output"));
        return Json.object(Json.object(Json.array(output.get("choices")).get(0)).get("message"));
    }

    // ...getMessage().getContent().get(0).get("text")
    private static Object firstText(Map<String, Object> result) {
        return Json.object(Json.array(firstMessage(result).get("content")).get(0)).get("text");
    }
}
