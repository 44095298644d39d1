/// `/api/openapi.json`: what this server really does, envelope and `/progress`
/// included (the PHP file describes bare payloads, `duplicate` and no progress).
enum OpenAPIDocument {
    static let json = #"""
        {"openapi":"3.0.3","info":{"title":"TaskManager API (taskbridge \#
        embedded)","version":"1.0.0",\#
        "description":"TaskManager-compatible API. Every success is HTTP 200 with the envelope {success:true,\#
        message:\"Success\",data,timestamp}; handler errors are {success:false,error,timestamp[,\#
        details]}; 401/413/429 use {error,message,timestamp(ISO-8601)}."},
        "servers":[{"url":"/api"}],
        "security":[{"apiKey":[]}],
        "components":{
         "securitySchemes":{"apiKey":{"type":"apiKey","in":"header","name":"X-API-Key"}},
         "schemas":{
          "Envelope":{"type":"object","required":["success","message","data","timestamp"],\#
          "properties":{"success":{"type":"boolean","enum":[true]},"message":{"type":"string","enum":["Success"]},\#
          "data":{},"timestamp":{"type":"integer","description":"Unix seconds"}}},
          "Error":{"type":"object","required":["success","error","timestamp"],\#
          "properties":{"success":{"type":"boolean","enum":[false]},"error":{"type":"string"},\#
          "timestamp":{"type":"integer"},"details":{"type":"array","items":{"type":"string"}}}},
          "MiddlewareError":{"type":"object","required":["error","message","timestamp"],\#
          "properties":{"error":{"type":"string"},"message":{"type":"string"},"timestamp":{"type":"string",\#
          "format":"date-time"},"retry_after":{"type":"integer"},"limit":{"type":"integer"},\#
          "window":{"type":"integer"}}},
          "TaskType":{"type":"object","properties":{"id":{"type":"integer"},"name":{"type":"string"},\#
          "version":{"type":"string"},"param_schema":{"type":"object"},"is_active":{"type":"integer","enum":[0,1]},\#
          "created_at":{"type":"string"},"updated_at":{"type":"string"}}},
          "TaskTypeListItem":{"type":"object","properties":{"id":{"type":"integer"},"name":{"type":"string"},\#
          "version":{"type":"string"},"is_active":{"type":"integer"},"created_at":{"type":"string"},\#
          "updated_at":{"type":"string"},"usage_count":{"type":"integer"},"last_used_at":{"type":"string",\#
          "nullable":true}}},
          "Task":{"type":"object","properties":{"id":{"type":"integer"},"type":{"type":"string"},\#
          "status":{"type":"string","enum":["pending","claimed","completed","failed"]},"params":{"type":"object"},\#
          "result":{"nullable":true},"error_message":{"type":"string","nullable":true},\#
          "priority":{"type":"integer"},"progress":{"type":"integer"},"attempts":{"type":"integer"},\#
          "claimed_by":{"type":"string","nullable":true},"claimed_at":{"type":"string","nullable":true},\#
          "completed_at":{"type":"string","nullable":true},"created_at":{"type":"string"}}},
          "TaskListItem":{"type":"object","properties":{"id":{"type":"integer"},"type":{"type":"string"},\#
          "status":{"type":"string"},"priority":{"type":"integer"},"progress":{"type":"integer"},\#
          "attempts":{"type":"integer"},"claimed_by":{"type":"string","nullable":true},\#
          "created_at":{"type":"string"},"completed_at":{"type":"string","nullable":true}}}
         },
         "responses":{
          "Error":{"description":"Error \#
          envelope","content":{"application/json":{"schema":{"$ref":"#/components/schemas/Error"}}}},
          "Unauthorized":{"description":"Missing or wrong X-API-Key (text/html body holding JSON, as the PHP server \#
          sends)","content":{"text/html":{"schema":{"$ref":"#/components/schemas/MiddlewareError"}}}},
          "TooLarge":{"description":"Body larger than \#
          MAX_REQUEST_SIZE","content":{"text/html":{"schema":{"$ref":"#/components/schemas/MiddlewareError"}}}},
          "RateLimited":{"description":"Rate limit exceeded; Retry-After header \#
          set","content":{"text/html":{"schema":{"$ref":"#/components/schemas/MiddlewareError"}}}}
         }
        },
        "paths":{
         "/health":{"get":{"operationId":"healthCheck","security":[],"responses":{"200":{"description":"data: \#
         {status:\"healthy\",timestamp,database:\"connected\"}",\#
         "content":{"application/json":{"schema":{"$ref":"#/components/schemas/Envelope"}}}}}}},
         "/task-types/register":{"post":{"operationId":"registerTaskType","requestBody":{"required":true,\#
         "content":{"application/json":{"schema":{"type":"object","required":["name","version","param_schema"],\#
         "properties":{"name":{"type":"string"},"version":{"type":"string"},\#
         "param_schema":{"oneOf":[{"type":"object"},{"type":"string"}]}}}}}},\#
         "responses":{"200":{"description":"data: {id,name,version,created:true} or {id,name,version,updated:true}",\#
         "content":{"application/json":{"schema":{"$ref":"#/components/schemas/Envelope"}}}},\#
         "400":{"$ref":"#/components/responses/Error"},"401":{"$ref":"#/components/responses/Unauthorized"}}}},
         "/task-types/{name}":{"get":{"operationId":"getTaskType","parameters":[{"name":"name","in":"path",\#
         "required":true,"schema":{"type":"string"}}],"responses":{"200":{"description":"data: TaskType",\#
         "content":{"application/json":{"schema":{"$ref":"#/components/schemas/Envelope"}}}},\#
         "404":{"$ref":"#/components/responses/Error"}}}},
         "/task-types":{"get":{"operationId":"listTaskTypes","parameters":[{"name":"active_only","in":"query",\#
         "schema":{"type":"string","enum":["true","1","false","0"]}},{"name":"sort_by","in":"query",\#
         "schema":{"type":"string","default":"usage_count","enum":["usage_count","last_used_at","name","id",\#
         "version","created_at","updated_at"]}},{"name":"sort_order","in":"query","schema":{"type":"string",\#
         "default":"DESC","enum":["ASC","DESC"]}}],\#
         "responses":{"200":{"description":"data: {items:[TaskTypeListItem],count}",\#
         "content":{"application/json":{"schema":{"$ref":"#/components/schemas/Envelope"}}}}}}},
         "/tasks":{
          "post":{"operationId":"createTask","requestBody":{"required":true,\#
          "content":{"application/json":{"schema":{"type":"object","required":["type","params"],\#
          "properties":{"type":{"type":"string","minLength":1},"params":{"type":"object","minProperties":1},\#
          "priority":{"type":"integer","default":0}}}}}},"responses":{"200":{"description":"data: {id,type,\#
          status:\"pending\",priority,dedupe_key,message:\"Task created successfully\"} or,\#
           for an existing dedupe key in any status, {id,status,deduplicated:true,\#
           message:\"Task already exists (deduplicated)\"}",\#
           "content":{"application/json":{"schema":{"$ref":"#/components/schemas/Envelope"}}}},\#
           "400":{"$ref":"#/components/responses/Error"},"404":{"$ref":"#/components/responses/Error"},\#
           "413":{"$ref":"#/components/responses/TooLarge"},"429":{"$ref":"#/components/responses/RateLimited"}}},
          "get":{"operationId":"listTasks","parameters":[{"name":"status","in":"query","description":"one status, a \#
          comma-separated list, or a LIKE pattern with %","schema":{"type":"string"}},{"name":"type","in":"query",\#
          "schema":{"type":"string"}},{"name":"limit","in":"query","schema":{"type":"integer","default":50,\#
          "minimum":0}},{"name":"offset","in":"query","schema":{"type":"integer","default":0,"minimum":0}}],\#
          "responses":{"200":{"description":"data: {items:[TaskListItem],count}, newest first",\#
          "content":{"application/json":{"schema":{"$ref":"#/components/schemas/Envelope"}}}}}}
         },
         "/tasks/claim":{"post":{"operationId":"claimTask","requestBody":{"required":true,\#
         "content":{"application/json":{"schema":{"type":"object","required":["worker_id","task_type_id"],\#
         "properties":{"worker_id":{"type":"string"},"task_type_id":{"type":"integer"},\#
         "type_pattern":{"type":"string"},"sort_by":{"type":"string","enum":["created_at","priority","id",\#
         "attempts"],"default":"created_at"},"sort_order":{"type":"string","enum":["ASC","DESC"],\#
         "default":"ASC"}}}}}},"responses":{"200":{"description":"data: {id,type,params,attempts,priority,\#
         message:\"Task claimed successfully\"}",\#
         "content":{"application/json":{"schema":{"$ref":"#/components/schemas/Envelope"}}}},\#
         "400":{"$ref":"#/components/responses/Error"},"404":{"description":"No available tasks",\#
         "content":{"application/json":{"schema":{"$ref":"#/components/schemas/Error"}}}}}}},
         "/tasks/{id}":{"get":{"operationId":"getTask","parameters":[{"name":"id","in":"path","required":true,\#
         "schema":{"type":"integer"}}],"responses":{"200":{"description":"data: Task",\#
         "content":{"application/json":{"schema":{"$ref":"#/components/schemas/Envelope"}}}},\#
         "404":{"$ref":"#/components/responses/Error"}}}},
         "/tasks/{id}/complete":{"post":{"operationId":"completeTask","parameters":[{"name":"id","in":"path",\#
         "required":true,"schema":{"type":"integer"}}],"requestBody":{"required":true,\#
         "content":{"application/json":{"schema":{"type":"object","required":["worker_id","success"],\#
         "properties":{"worker_id":{"type":"string"},"success":{"type":"boolean"},"result":{},\#
         "error":{"type":"string"}}}}}},"responses":{"200":{"description":"data: {id,\#
         status:\"completed\"|\"failed\"|\"pending (retry)\",message:\"Task completed\"}",\#
         "content":{"application/json":{"schema":{"$ref":"#/components/schemas/Envelope"}}}},\#
         "400":{"$ref":"#/components/responses/Error"},"403":{"$ref":"#/components/responses/Error"},\#
         "404":{"$ref":"#/components/responses/Error"}}}},
         "/tasks/{id}/progress":{"post":{"operationId":"updateTaskProgress","parameters":[{"name":"id","in":"path",\#
         "required":true,"schema":{"type":"integer"}}],"requestBody":{"required":true,\#
         "content":{"application/json":{"schema":{"type":"object","required":["worker_id","progress"],\#
         "properties":{"worker_id":{"type":"string"},"progress":{"type":"integer","minimum":0,"maximum":100},\#
         "message":{"type":"string"}}}}}},"responses":{"200":{"description":"data: {id,progress,\#
         message:\"Task progress updated successfully\"}; does not renew the lease",\#
         "content":{"application/json":{"schema":{"$ref":"#/components/schemas/Envelope"}}}},\#
         "400":{"$ref":"#/components/responses/Error"},"403":{"$ref":"#/components/responses/Error"},\#
         "404":{"$ref":"#/components/responses/Error"}}}}
        }}
        """#
}
